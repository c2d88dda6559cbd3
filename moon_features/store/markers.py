"""Materialization markers: the online store itself records which views were filled, and when.

Feast's registry remembers what was materialized, but the registry is a file: when Redis
restarts without its data the registry still says "done", incremental materialization writes
nothing, and a service reading the empty store scores every request with zeros. So every
materialize path of this project writes, after a view's rows, a marker *into the online store*:

* Redis: one hash `moon_features:materialized:<project>`, field = view name, value = the UTC
  end of the window written (ISO 8601). A wipe (restart without persistence, FLUSHALL) takes
  the markers with the data.
* SQLite: a table `moon_features_materialized(project, view, materialized_until)` in the
  online database file.

`missing_views` is what /health and /events check; `moon-features materialize --repo DIR`
fills every view whose marker is missing over its whole window (see store/cli.py).
"""
from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .configs import is_redis_config

SQLITE_TABLE = "moon_features_materialized"


def redis_marker_key(project: str) -> bytes:
    return f"moon_features:materialized:{project}".encode()


def _sqlite_db(config) -> Path | None:
    if getattr(config.online_store, "type", "") != "sqlite":
        return None
    path = Path(config.online_store.path)
    if not path.is_absolute() and config.repo_path:
        path = Path(config.repo_path) / path
    return path


class MarkerStore:
    """Reads and writes the markers of one feature store's online store (Redis or SQLite).
    Other online stores have no markers: every check passes (documented in docs/reliability.md)."""

    def __init__(self, config):
        self.config = config
        self.project = config.project
        self._transport = None
        self._db = _sqlite_db(config)
        if is_redis_config(config):
            from .redis_connection import RedisTransport

            self._transport = RedisTransport(config.online_store)

    @property
    def supported(self) -> bool:
        return self._transport is not None or self._db is not None

    def write(self, views: Iterable[str], until: datetime | None = None) -> None:
        """Mark `views` as materialized up to `until` (default now); call after their rows are written."""
        views = sorted(set(views))
        if not views or not self.supported:
            return
        stamp = (until or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat()
        if self._transport is not None:
            args = [b"HSET", redis_marker_key(self.project)]
            for view in views:
                args += [view.encode(), stamp.encode()]
            self._transport.execute_commands([args])
            return
        self._db.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self._db, timeout=30)) as conn, conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {SQLITE_TABLE} (project TEXT, view TEXT, "
                         "materialized_until TEXT, PRIMARY KEY (project, view))")
            conn.executemany(f"INSERT OR REPLACE INTO {SQLITE_TABLE} VALUES (?, ?, ?)",
                             [(self.project, v, stamp) for v in views])

    def read(self) -> dict[str, str]:
        """{view: materialized_until} of every marked view (empty for a wiped or never-filled store)."""
        if self._transport is not None:
            (reply,) = self._transport.execute_commands([[b"HGETALL", redis_marker_key(self.project)]])
            reply = reply or []
            if isinstance(reply, dict):
                return {k.decode(): v.decode() for k, v in reply.items()}
            return {reply[i].decode(): reply[i + 1].decode() for i in range(0, len(reply), 2)}
        if self._db is None or not self._db.exists():
            return {}
        with closing(sqlite3.connect(f"file:{self._db}?mode=ro", uri=True, timeout=5)) as conn:
            try:
                rows = conn.execute(f"SELECT view, materialized_until FROM {SQLITE_TABLE} WHERE project = ?",
                                    (self.project,)).fetchall()
            except sqlite3.OperationalError:  # no table: never marked (or the database was replaced)
                return {}
        return dict(rows)

    def missing_views(self, views: Iterable[str]) -> list[str]:
        """Those of `views` without a marker; always [] where markers are not supported."""
        if not self.supported:
            return []
        marked = self.read()
        return sorted(v for v in set(views) if v not in marked)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def mark_materialized(store, views: Iterable[str], until: datetime | None = None) -> None:
    """Write markers for `views` of a FeatureStore (one-off; the service keeps a MarkerStore)."""
    mark_materialized_config(store.config, views, until)


def mark_materialized_config(config, views: Iterable[str], until: datetime | None = None) -> None:
    markers = MarkerStore(config)
    try:
        markers.write(views, until)
    finally:
        markers.close()
