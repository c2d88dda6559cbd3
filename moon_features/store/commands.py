"""Store subcommands' handlers (the parser is store/cli.py): materialize and materialize-embeddings."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import yaml

from .bulk_writer import materialize_embeddings
from .definitions import embedding_spec_of
from .errors import EmbeddingValidationError, RepoNotReadyError
from .markers import MarkerStore, mark_materialized
from .repo import open_store
from .source_check import SourceCheckError, check_embedding_source

FULL_START = pd.Timestamp("1970-01-02", tz="UTC").to_pydatetime()  # ttl=0 views: everything, as materialize_all


def materialize_embeddings_command(args) -> None:
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


def materialize_command(args) -> None:
    """Fill the online store: a view whose marker is missing (never filled, or the store was wiped)
    over its whole window, a marked one incrementally; --full rewrites every view in full."""
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
    versions = sorted(s.version for s in map(embedding_spec_of, store.list_feature_views()) if s)
    if not versions:
        raise EmbeddingValidationError("no embedding feature views are registered; run `feast apply` first")
    return versions
