"""A moon-features Feast repository on disk: config, spec, sources, and applying it.

Layout (the one in feature_repo/, and the one temporary repos in tests get)::

    <repo>/feature_store.yaml   online/offline store configuration
    <repo>/features.py          the Feast definitions (a copy of moon_features/store/template/features.py)
    <repo>/spec.json            the FeatureSpec (written by `moon-features features build`)
    <repo>/data/*.parquet       offline sources, one per feature view; registry and SQLite db
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from feast import FeatureStore

from .configs import CONFIG_FILE, DATA_DIR, SPEC_FILE, plugin_redis_config, sqlite_config
from .definitions import FEATURES_FILE, LEGACY_FEATURES_LINE, TEMPLATE, repo_objects
from .definitions import load_repo_spec as load_spec
from .errors import RepoNotReadyError
from .markers import mark_materialized

__all__ = ["init_repo", "load_spec", "apply_repo", "materialize_all", "open_store", "DATA_DIR", "SPEC_FILE",
           "RepoNotReadyError"]


def init_repo(repo_dir: str | Path, project: str = "moon_features", online: str = "sqlite",
              redis_connection: str | None = None) -> Path:
    """Create (or refresh the config of) a repository; sources are written separately."""
    repo_dir = Path(repo_dir)
    (repo_dir / DATA_DIR).mkdir(parents=True, exist_ok=True)
    if online == "sqlite":
        config = sqlite_config(project)
    elif online == "redis":
        config = plugin_redis_config(project, redis_connection or "${MOON_REDIS_URL}")
    else:
        raise ValueError(f"online store must be 'sqlite' or 'redis', got {online!r}")
    (repo_dir / CONFIG_FILE).write_text(config)
    write_features_file(repo_dir)
    return repo_dir


def write_features_file(repo_dir: Path) -> None:
    """Copy the template features.py into a repo that has none, or the old generated one."""
    features = Path(repo_dir) / FEATURES_FILE
    if not features.exists() or LEGACY_FEATURES_LINE in features.read_text():
        features.write_text(TEMPLATE.read_text())


def apply_repo(repo_dir: str | Path, config_file: str | Path | None = None) -> FeatureStore:
    """The programmatic `feast apply`: register every object of the repo and return the store."""
    repo_dir = Path(repo_dir)
    write_features_file(repo_dir)
    store = open_store(repo_dir, config_file)
    store.apply(list(repo_objects(repo_dir).values()))
    return store


def materialize_all(store: FeatureStore, views: list[str] | None = None) -> None:
    """`feast materialize` over all time: ttl=0 views would otherwise only look back one year.
    Each view's marker is written into the online store afterwards (store/markers.py: how
    /health tells a filled store from a wiped one)."""
    start, end = datetime(1970, 1, 2, tzinfo=timezone.utc), datetime.now(timezone.utc)
    store.materialize(start_date=start, end_date=end, feature_views=views)
    mark_materialized(store, views or [fv.name for fv in store.list_feature_views()], end)


def open_store(repo_dir: str | Path, config_file: str | Path | None = None) -> FeatureStore:
    repo_dir = Path(repo_dir)
    if config_file:
        return FeatureStore(repo_path=str(repo_dir), fs_yaml_file=Path(config_file))
    return FeatureStore(repo_path=str(repo_dir))
