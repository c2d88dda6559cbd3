"""Running a parsed `moon-features` subcommand: shared by the main CLI and the capability CLIs
(`python -m moon_features.serving.cli`, `... lab.cli`), which therefore need not import the main
CLI (that would close an import circle: the main CLI registers their subcommands)."""
from __future__ import annotations

import os
import sys

from .errors import MoonFeaturesError


def run(args) -> int:
    """Run a parsed subcommand: user errors become a message and exit status 2, no traceback."""
    try:
        return args.func(args) or 0
    except MoonFeaturesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def exit_now(code: int) -> None:
    """Exit without interpreter finalisation, where DuckDB's bindings would print pages of
    "leaked instance" noise after our last line."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
