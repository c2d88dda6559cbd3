"""`moon-features lab exchange-rate | scaling | run` and `moon-features report`.

The main CLI calls `add_lab_commands(subparsers)`; `python -m moon_features.lab.cli ...` runs the
same commands stand-alone.
"""
from __future__ import annotations

import argparse
import sys
import time

from ..command import run


def _ints(text: str | None):
    return None if text is None else tuple(int(t) for t in text.split(",") if t.strip())


def _preset(args):
    from .presets import get_lab_preset

    p = get_lab_preset(args.preset)
    over = {}
    if getattr(args, "seq_lens", None):
        over["seq_lens"] = _ints(args.seq_lens)
    if getattr(args, "queue_sizes", None):
        over["queue_sizes"] = _ints(args.queue_sizes)
    if getattr(args, "negatives_downstream", False):
        over["negatives_downstream"] = True
    if getattr(args, "no_seq_len_baseline", False):
        over["seq_len_baseline"] = False
    return p.with_overrides(**over)


def _command(argv_hint: str) -> str:
    return "moon-features " + " ".join(sys.argv[1:]) if sys.argv[1:] else argv_hint


def _session(args):
    from .session import LabSession

    return LabSession(args.run, _preset(args), args.data, args.threads, not args.quiet, _command("moon-features lab"))


def _exchange_rate(args) -> int:
    from .exchange_rate import run_exchange_rate

    t0 = time.perf_counter()
    run_exchange_rate(args.run, session=_session(args), progress=not args.quiet)
    print(f"lab exchange-rate done in {time.perf_counter() - t0:.0f} s -> {args.run}")
    return 0


def _scaling(args) -> int:
    from .scaling import SWEEPS, run_scaling

    t0 = time.perf_counter()
    sweeps = tuple(args.sweeps.split(",")) if args.sweeps else SWEEPS
    run_scaling(args.run, session=_session(args), sweeps=sweeps, progress=not args.quiet)
    print(f"lab scaling done in {time.perf_counter() - t0:.0f} s -> {args.run}")
    return 0


def _run_all(args) -> int:
    from .exchange_rate import run_exchange_rate
    from .report import build_report
    from .scaling import SWEEPS, run_scaling

    t0 = time.perf_counter()
    s = _session(args)
    run_exchange_rate(args.run, session=s, progress=not args.quiet)
    sweeps = tuple(args.sweeps.split(",")) if args.sweeps else SWEEPS
    run_scaling(args.run, session=s, sweeps=sweeps, progress=not args.quiet)
    build_report(args.run, args.serving)
    print(f"lab run done in {time.perf_counter() - t0:.0f} s -> {args.run}/report.md")
    return 0


def _report(args) -> int:
    from .report import build_report

    build_report(args.run, args.serving, args.out)
    return 0


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
    p.set_defaults(func=_exchange_rate)
    p = lab.add_parser("scaling", help="sweeps over encoder examples, negatives per query and sequence length L, "
                                       "with power-law fits and the time each point cost")
    _common(p, sweeps=True)
    p.set_defaults(func=_scaling)
    p = lab.add_parser("run", help="exchange-rate, scaling and report in one go")
    _common(p, sweeps=True)
    p.add_argument("--serving", action="append", default=None, help="a serving / lookup bench JSON for the report")
    p.set_defaults(func=_run_all)

    p = subparsers.add_parser("report", help="one Markdown + HTML page of a lab run's figures")
    p.add_argument("--run", required=True, help="the lab run folder")
    p.add_argument("--serving", action="append", default=None,
                   help="serving / online-lookup bench JSON (repeatable); serving*.json in the run folder is "
                        "picked up automatically")
    p.add_argument("--out", default=None, help="where report.md / report.html go (default: the run folder)")
    p.set_defaults(func=_report)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="moon-features", description="the MOON lab")
    add_lab_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
