"""`moon-features lab exchange-rate | scaling | run` and `moon-features report`.

The main CLI calls `add_lab_commands(subparsers)`; `python -m moon_features.lab.cli ...` runs the
same commands stand-alone. Handlers: lab/commands.py.
"""
from __future__ import annotations

import argparse
import sys

from ..command import handler, run


def _common(p: argparse.ArgumentParser, sweeps: bool = False) -> None:
    p.add_argument("--preset", default="tiny", choices=["tiny", "movielens"],
                   help="tiny: 200-item synthetic shop, for tests; movielens: the full lab (~60 min on 2 idle cores)")
    p.add_argument("--data", default=None, help="dataset folder (canonical layout) or the MovieLens-100k-with-posters "
                                                "folder; default: the preset's (synthetic shop / ../shared/data)")
    p.add_argument("--run", required=True, help="the lab run folder, e.g. runs/lab/<name>; re-running resumes it")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadier on shared cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if sweeps:
        p.add_argument("--sweeps", default=None, help="comma list of examples,negatives,seq_len (default: all)")
        p.add_argument("--seq-lens", default=None, help="override the preset's L values, e.g. 5,10,20,50,100")
        p.add_argument("--queue-sizes", default=None, help="override the preset's memory-queue sizes, e.g. 0,1024,4096")
        p.add_argument("--negatives-downstream", action="store_true", help="also train DIN for every queue size")
        p.add_argument("--no-seq-len-baseline", action="store_true", help="skip DIN ids-only at every L")


def add_lab_commands(subparsers) -> None:
    """Register `lab exchange-rate`, `lab scaling`, `lab run` and `report` on the main CLI."""
    lab = subparsers.add_parser("lab", help="exchange rate of intermediate metrics, scaling sweeps").add_subparsers(
        dest="lab_command", required=True)
    p = lab.add_parser("exchange-rate", help="intermediate metrics vs downstream DIN AUC / GAUC across encoder "
                                             "variants; which metric predicts downstream gains")
    _common(p)
    p.set_defaults(func=handler("moon_features.lab.commands:exchange_rate_command"))
    p = lab.add_parser("scaling", help="sweeps over encoder examples, negatives per query and sequence length L, "
                                       "with power-law fits and the time each point cost")
    _common(p, sweeps=True)
    p.set_defaults(func=handler("moon_features.lab.commands:scaling_command"))
    p = lab.add_parser("run", help="exchange-rate, scaling and report in one go")
    _common(p, sweeps=True)
    p.add_argument("--serving", action="append", default=None, help="a serving / lookup bench JSON for the report")
    p.set_defaults(func=handler("moon_features.lab.commands:run_all_command"))

    p = subparsers.add_parser("report", help="one Markdown + HTML page of a lab run's figures")
    p.add_argument("--run", required=True, help="the lab run folder")
    p.add_argument("--serving", action="append", default=None,
                   help="serving / online-lookup bench JSON (repeatable); serving*.json in the run folder is "
                        "picked up automatically")
    p.add_argument("--out", default=None, help="where report.md / report.html go (default: the run folder)")
    p.set_defaults(func=handler("moon_features.lab.commands:report_command"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="moon-features", description="the MOON lab")
    add_lab_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
