"""Store subcommands for the `moon-features` CLI: `add_store_commands(subparsers)` registers them
(handlers: store/commands.py).

    moon-features materialize-embeddings --repo feature_repo --config feature_store.redis.yaml --version 1
"""
from __future__ import annotations

import argparse

import pandas as pd

from ..command import handler


def _timestamp(text: str):
    ts = pd.Timestamp(text)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def add_store_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "materialize", help="fill the online store: wiped or never-filled views in full, the rest incrementally",
        description="Reads each view's materialization marker in the online store (written by every "
                    "materialize path of moon-features). A view without one -- a new store, or one wiped by a "
                    "Redis restart -- is written over its whole window, whatever the registry says; the others "
                    "from where they ended. Then the markers are written, and /health answers 200 again.")
    p.add_argument("--repo", default="feature_repo", help="Feast repository directory")
    p.add_argument("--config", default=None, help="feature_store.yaml variant (default: <repo>/feature_store.yaml)")
    p.add_argument("--view", action="append", help="only this feature view (repeatable; default: all)")
    p.add_argument("--full", action="store_true", help="every view over its whole window")
    p.set_defaults(func=handler("moon_features.store.commands:materialize_command"))

    p = subparsers.add_parser(
        "materialize-embeddings",
        help="write embedding feature views from their Parquet sources into the online store, fast",
        description="Validates every vector (dimension from the view's moon.dim tag, NaN/inf, floats) before "
                    "writing anything, writes Feast's own Redis format in pipelined batches, and records the "
                    "materialization interval in the registry like `feast materialize`. Safe to re-run.")
    p.add_argument("--repo", default="feature_repo", help="Feast repository directory")
    p.add_argument("--config", default=None, help="feature_store.yaml variant (default: <repo>/feature_store.yaml)")
    p.add_argument("--version", type=int, action="append",
                   help="embedding version to write (repeatable; default: every registered version)")
    p.add_argument("--batch-size", type=int, default=10_000, help="rows per pipelined write (bounds memory)")
    p.add_argument("--start", type=_timestamp, default=None, help="window start (default 1970-01-02 UTC)")
    p.add_argument("--end", type=_timestamp, default=None, help="window end (default now)")
    p.add_argument("--incremental", action="store_true", help="start where the last materialization ended")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handler("moon_features.store.commands:materialize_embeddings_command"))
