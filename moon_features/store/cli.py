"""Store subcommands for the `moon-features` CLI: `add_store_commands(subparsers)` registers them.

    moon-features materialize-embeddings --repo feature_repo --config feature_store.redis.yaml --version 1
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pyarrow as pa
import yaml

from .source_check import SourceCheckError, check_embedding_source

FULL_START = pd.Timestamp("1970-01-02", tz="UTC").to_pydatetime()  # ttl=0 views: everything, as materialize_all


def _timestamp(text: str):
    ts = pd.Timestamp(text)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def _materialize_embeddings(args) -> None:
    from .bulk_writer import materialize_embeddings
    from .markers import mark_materialized

    store = open_repo_store(args.repo, args.config)
    versions = args.version or _registered_versions(store)
    paths = {version: check_embedding_source(store, version) for version in versions}  # all, before any write
    for version in versions:
        try:
            result = materialize_embeddings(store, version, start_date=args.start, end_date=args.end,
                                            batch_size=args.batch_size, progress=not args.quiet,
                                            incremental=args.incremental)
        except (pa.ArrowException, OSError) as e:  # e.g. a file changed or damaged since the preflight
            raise SourceCheckError(f"{paths[version]}: cannot be read ({type(e).__name__}: {str(e)[:200]}); "
                                   "write it again with `moon-features encoder embed`") from None
        mark_materialized(store, [result.view])


def _materialize(args) -> None:
    """Fill the online store: a view whose marker is missing (never filled, or the store was wiped)
    over its whole window, a marked one incrementally; --full rewrites every view in full."""
    from datetime import datetime, timezone

    from .markers import MarkerStore

    store = open_repo_store(args.repo, args.config)
    views = args.view or [fv.name for fv in store.list_feature_views()]
    markers = MarkerStore(store.config)
    try:
        marked = markers.read()
        full = [v for v in views if args.full or v not in marked]
        incremental = [v for v in views if v not in full]
        end = datetime.now(timezone.utc)
        if full:
            store.materialize(start_date=FULL_START, end_date=end, feature_views=full)
        if incremental:
            store.materialize_incremental(end_date=end, feature_views=incremental)
        markers.write(views, end)
    finally:
        markers.close()
    print(f"materialized {len(full)} view(s) in full ({', '.join(full) or 'none'}) and {len(incremental)} "
          f"incrementally, up to {end.isoformat(timespec='seconds')}")


def open_repo_store(repo: str, config: str | None):
    """open_store with the mistakes a user can make named: no repo folder, no or a broken YAML."""
    from .errors import RepoNotReadyError
    from .repo import open_store

    repo_dir = Path(repo)
    yaml_file = Path(config) if config else repo_dir / "feature_store.yaml"
    if not repo_dir.is_dir() or not yaml_file.is_file():
        raise RepoNotReadyError(f"{yaml_file} does not exist: pass --repo (and --config) of a Feast repository "
                                "built by `moon-features features build`")
    try:
        return open_store(repo_dir, config)
    except (ValueError, OSError, KeyError, TypeError, yaml.YAMLError) as e:  # Feast's config errors: pydantic ValueErrors
        raise RepoNotReadyError(f"{yaml_file} is not a usable feature_store.yaml ({type(e).__name__}: "
                                f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None


def _registered_versions(store) -> list[int]:
    from .definitions import embedding_spec_of
    from .errors import EmbeddingValidationError

    versions = sorted(s.version for s in map(embedding_spec_of, store.list_feature_views()) if s)
    if not versions:
        raise EmbeddingValidationError("no embedding feature views are registered; run `feast apply` first")
    return versions


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
    p.set_defaults(func=_materialize)

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
    p.set_defaults(func=_materialize_embeddings)
