"""Running a parsed `moon-features` subcommand: shared by the main CLI and the capability CLIs
(`python -m moon_features.serving.cli`, `... lab.cli`), which therefore need not import the main
CLI (that would close an import circle: the main CLI registers their subcommands).

A parser module (`cli.py`) only declares arguments; its handlers live in a `commands.py` that
imports what it needs at its top, and are named by dotted path (`handler`). So building the
parser, and `moon-features --help`, loads neither torch nor Feast nor matplotlib: only the
subcommand that runs imports its handler module.
"""
from __future__ import annotations

import importlib
import os
import sys
import warnings

from .errors import MoonFeaturesError


def quiet_third_party_warnings() -> None:
    """Hide warnings that are not ours to fix and printed several times per command.

    ibis (under Feast's DuckDB offline store) calls DuckDB's deprecated fetch_arrow_table() on every
    offline read. Installed again after each handler import: importing feast.feature_store runs
    `warnings.simplefilter("once", DeprecationWarning)`, which goes in front of any filter installed
    before it. Matched by message, so it holds wherever the call moves."""
    warnings.filterwarnings("ignore", message=r".*fetch_arrow_table\(\) is deprecated", category=DeprecationWarning)


def handler(target: str):
    """A subcommand's handler, "package.module:function", imported when the subcommand runs."""
    module, _, name = target.partition(":")

    def call(args):
        function = getattr(importlib.import_module(module), name)
        quiet_third_party_warnings()  # after the import: see its docstring
        return function(args)

    call.target = target
    return call


def run(args) -> int:
    """Run a parsed subcommand: user errors become a message and exit status 2, no traceback."""
    quiet_third_party_warnings()
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
