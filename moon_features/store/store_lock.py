"""One thread lock per online store, shared by the sequence appender and the generic reader.

Feast's SQLite online store keeps one connection for all threads; a read running on it while
another thread commits a push fails that commit with sqlite3.OperationalError (seen as a 500 on
/events with 8 concurrent clients). Reads and appends of one store in one process therefore take
the same lock; across processes SQLite's own file locking (and the appender's lock file) applies.
"""
from __future__ import annotations

import threading
from pathlib import Path

from feast import FeatureStore

_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def sqlite_path(store: FeatureStore) -> str | None:
    """The resolved database path of an SQLite online store, else None."""
    config = store.config
    if getattr(config.online_store, "type", "") != "sqlite":
        return None
    path = Path(config.online_store.path)
    if not path.is_absolute() and config.repo_path:
        path = Path(config.repo_path) / path
    return str(path.resolve())


def thread_lock(store: FeatureStore) -> threading.Lock:
    """The lock of this store (its SQLite file, or its repo and project)."""
    name = sqlite_path(store) or f"{store.repo_path}:{store.config.project}"
    with _GUARD:
        return _LOCKS.setdefault(name, threading.Lock())
