"""Real-time behaviour sequences: append a user's new positive event, atomically per user.

The online row of `user_behavior_sequence` is the user's latest state: the last L positive
items, oldest first (the offline table's closing row has the same meaning). Appending reads
that row with its timestamp, appends the item, keeps the last L and writes the row back.

Atomicity: two events for one user arriving together must both be kept (an acknowledged event
is a stored event), so the read-modify-write is one step:
* Redis: one Lua script (append_script.py) reads, appends, trims and writes Feast's layout;
  Redis runs it alone, so it is atomic across threads, worker processes and machines. An event
  that also enters further sequences (a purchase sequence) writes them in the same script call:
  all of them or none.
* SQLite: an exclusive lock file beside the database (plus a thread lock) around Feast's own
  read and push: atomic across the threads and processes of one machine, which is where an
  SQLite store lives.
* Any other online store: a thread lock around Feast's read and push (one process only).

Ordering: Feast keeps only a row strictly newer than the stored one. An event that arrives late
(its time <= the stored row's) is still appended, at the end, and the row is stamped 1
microsecond after the stored time, so it is never silently dropped.
"""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from ..fields import SequenceSpec
from ..spec import SEQUENCE_PUSH_SOURCE, SEQUENCE_VIEW, FeatureSpec
from . import redis_codec as codec
from .append_script import SCRIPT
from .configs import is_redis_config
from .layout import ViewLayout, versioning_enabled
from .store_lock import sqlite_path, thread_lock

ONE_MICROSECOND = timedelta(microseconds=1)


def current_sequence(store: FeatureStore, user_id: int, view: str = SEQUENCE_VIEW,
                     column: str = "hist_item_ids") -> tuple[list[int], datetime | None]:
    """The user's stored history (oldest first) and the row's event time; ([], None) if none."""
    fv = store.get_feature_view(view)
    key = EntityKey(join_keys=[fv.join_keys[0]], entity_values=[Value(int64_val=int(user_id))])
    provider = store.provider
    ((ts, values),) = provider.online_read(store.config, fv, [key], [column])
    if not values or values.get(column) is None or values[column].WhichOneof("val") is None:
        return [], None
    return list(values[column].int64_list_val.val), ts


def _utc_us(event_timestamp) -> pd.Timestamp:
    when = pd.Timestamp(event_timestamp)
    if when.tzinfo is None:
        raise ValueError(f"event_timestamp {event_timestamp!r} has no time zone; pass a UTC timestamp")
    return when.tz_convert("UTC").as_unit("us")


def _result(user_id: int, history, when: pd.Timestamp) -> dict:
    history = np.asarray(history, dtype=np.int64)
    return {"user_id": int(user_id), "hist_item_ids": history, "hist_len": len(history),
            "event_timestamp": when.to_pydatetime().astimezone(timezone.utc)}


@dataclass(frozen=True)
class _Sequence:
    """Where one behaviour sequence lives: its view, push source and (ids, length) columns."""

    view: str
    push_source: str
    columns: tuple[str, str]

    @classmethod
    def of(cls, sequence: SequenceSpec | None) -> "_Sequence":
        if sequence is None:  # the main one
            return cls(SEQUENCE_VIEW, SEQUENCE_PUSH_SOURCE, ("hist_item_ids", "hist_len"))
        return cls(sequence.view_name, sequence.push_source, (sequence.ids_column, sequence.len_column))


class SequenceAppender:
    """Appends positive events to users' online sequences: the main one, and the spec's further
    sequences an event names. Build one per store and reuse it (it holds the Redis connection
    pool and the registered script)."""

    def __init__(self, store: FeatureStore, spec: FeatureSpec):
        self.store, self.spec = store, spec
        self.main = _Sequence.of(None)
        self.further = {q.name: _Sequence.of(q) for q in spec.sequences}
        self._redis = self._script = None
        if is_redis_config(store.config):
            self._init_redis()

    def _init_redis(self) -> None:
        from .redis_connection import RedisTransport

        self._redis = RedisTransport(self.store.config.online_store)
        self._script = self._redis.client.register_script(SCRIPT)
        versioned = versioning_enabled(self.store.config)
        self._fields = {}
        for seq in (self.main, *self.further.values()):
            layout = ViewLayout.of(self.store.get_feature_view(seq.view), versioned)
            ids, length = seq.columns
            self._fields[seq] = (layout.feature(ids).field, layout.feature(length).field, layout.ts_field)
        self._ttl = int(getattr(self.store.config.online_store, "key_ttl_seconds", None) or 0)

    def append(self, user_id: int, item_id: int, event_timestamp: datetime | pd.Timestamp,
               also: tuple[str, ...] = ()) -> dict:
        """Append `item_id` to the user's main sequence and to the further sequences named in
        `also`; returns the main sequence's row now stored. On Redis one script writes them all
        or none; elsewhere they are written in turn under the same lock.

        Returns {"user_id", "hist_item_ids" (np.int64, oldest first), "hist_len", "event_timestamp"}.
        Raises ValueError for a naive timestamp (its time zone would be a guess).
        """
        when = _utc_us(event_timestamp)
        sequences = [self.main, *(self.further[name] for name in also)]
        if self._script is not None:
            return self._append_redis(int(user_id), int(item_id), when, sequences)
        with self._lock():
            rows = [self._append_feast(int(user_id), int(item_id), when, seq) for seq in sequences]
        return rows[0]

    def _append_redis(self, user_id: int, item_id: int, when: pd.Timestamp, sequences: list[_Sequence]) -> dict:
        (key,) = codec.redis_keys("user_id", [user_id], self.store.config.project)
        args = [codec.varint(item_id), str(self.spec.max_len), str(when.value // 1000), str(self._ttl)]
        args += [field for seq in sequences for field in self._fields[seq]]
        with self._redis.errors():
            value, stamped_us = self._script(keys=[key], args=args)
        history = codec.decode_int64_list(value)
        return _result(user_id, history, pd.Timestamp(int(stamped_us), unit="us", tz="UTC"))

    def _append_feast(self, user_id: int, item_id: int, when: pd.Timestamp, seq: _Sequence) -> dict:
        history, stored_at = current_sequence(self.store, user_id, seq.view, seq.columns[0])
        history = (history + [item_id])[-self.spec.max_len:]
        if stored_at is not None and when <= pd.Timestamp(stored_at).tz_convert("UTC"):
            when = pd.Timestamp(stored_at).tz_convert("UTC").as_unit("us") + ONE_MICROSECOND
        row = pd.DataFrame({
            "user_id": pd.Series([user_id], dtype="int64"),
            "event_timestamp": pd.Series([when]),
            seq.columns[0]: [history],
            seq.columns[1]: pd.Series([len(history)], dtype="int64"),
        })
        self.store.push(seq.push_source, row, to=PushMode.ONLINE)
        return _result(user_id, history, when)

    @contextmanager
    def _lock(self):
        """Thread lock per store, plus an exclusive file lock beside an SQLite database."""
        path = sqlite_path(self.store)
        with thread_lock(self.store):
            if path is None:
                yield
                return
            with open(path + ".append.lock", "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def append_positive_event(store: FeatureStore, spec: FeatureSpec, user_id: int, item_id: int,
                          event_timestamp: datetime | pd.Timestamp) -> dict:
    """One-off `SequenceAppender(store, spec).append(...)`; a service keeps one appender instead."""
    appender = SequenceAppender(store, spec)
    try:
        return appender.append(user_id, item_id, event_timestamp)
    finally:
        appender.close()
