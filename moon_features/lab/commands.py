"""Handlers of `moon-features lab ...` and `moon-features report` (the parser is lab/cli.py)."""
from __future__ import annotations

import sys
import time

from .exchange_rate import run_exchange_rate
from .presets import get_lab_preset
from .report import build_report
from .scaling import SWEEPS, run_scaling
from .session import LabSession


def _ints(text: str | None):
    return None if text is None else tuple(int(t) for t in text.split(",") if t.strip())


def _preset(args):
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
    return LabSession(args.run, _preset(args), args.data, args.threads, not args.quiet, _command("moon-features lab"))


def exchange_rate_command(args) -> int:
    t0 = time.perf_counter()
    run_exchange_rate(args.run, session=_session(args), progress=not args.quiet)
    print(f"lab exchange-rate done in {time.perf_counter() - t0:.0f} s -> {args.run}")
    return 0


def scaling_command(args) -> int:
    t0 = time.perf_counter()
    sweeps = tuple(args.sweeps.split(",")) if args.sweeps else SWEEPS
    run_scaling(args.run, session=_session(args), sweeps=sweeps, progress=not args.quiet)
    print(f"lab scaling done in {time.perf_counter() - t0:.0f} s -> {args.run}")
    return 0


def run_all_command(args) -> int:
    t0 = time.perf_counter()
    s = _session(args)
    run_exchange_rate(args.run, session=s, progress=not args.quiet)
    sweeps = tuple(args.sweeps.split(",")) if args.sweeps else SWEEPS
    run_scaling(args.run, session=s, sweeps=sweeps, progress=not args.quiet)
    build_report(args.run, args.serving)
    print(f"lab run done in {time.perf_counter() - t0:.0f} s -> {args.run}/report.md")
    return 0


def report_command(args) -> int:
    build_report(args.run, args.serving, args.out)
    return 0
