"""materialize-embeddings: an embedding feature view from its Parquet source into the online store.

What `feast materialize` does for the view, without a protobuf object per value:

1. Plan (reads item_id and event_timestamp only): keep rows with start <= ts <= end (Feast's
   window, both ends inclusive) and, per item, the latest one (ties: the last in file order).
2. Validate every row in the window, batch by batch (dimension from the view's moon.dim tag,
   NaN / inf, non-float); the first problem raises EmbeddingValidationError naming the items,
   before anything is written. The online store is pinged before reading, so an unreachable
   Redis fails with OnlineStoreUnavailableError and writes nothing.
3. Write in batches of `batch_size` rows: keys and values encoded with numpy (redis_codec), one
   pipelined round trip to read the stored timestamps (Feast's rule: never replace a value
   with an older or same-time one) and one to HSET the rest. Memory stays O(batch + ids).
4. Record the interval in the registry (registry.apply_materialization), as feast materialize does.

Idempotent: the same source gives the same hashes. A run that dies half way leaves complete
rows only (each HSET is atomic) and no registry interval; re-running finishes the job.
Over a non-Redis online store step 3 hands the same bytes to the store's online_write_batch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureStore, FileSource
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from tqdm.auto import tqdm

from ..spec import EMBEDDING_FIELD, embedding_view_name
from . import redis_codec as codec
from .configs import is_redis_config
from .definitions import embedding_spec_of
from .layout import ViewLayout, versioning_enabled
from .errors import EmbeddingValidationError
from .validation import embedding_matrix

DEFAULT_START = datetime(1970, 1, 2, tzinfo=timezone.utc)  # ttl=0 views: everything, as materialize_all


@dataclass
class MaterializeResult:
    view: str
    rows_in_source: int
    rows_in_window: int
    items_written: int
    items_skipped: int  # the online store already held a value at least as new
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Rows handled (written or found current) per second of the whole run."""
        return (self.items_written + self.items_skipped) / self.seconds if self.seconds else float("inf")

    def summary(self) -> str:
        return (f"{self.view}: wrote {self.items_written:,} embeddings ({self.items_skipped:,} already current) "
                f"from {self.rows_in_window:,} rows in {self.seconds:.2f} s = {self.rows_per_second:,.0f} rows/s")


class SourceNotSupportedError(ValueError):
    """materialize-embeddings reads Parquet FileSources; use feast materialize for other sources."""


def _utc(ts: datetime | None, default: datetime) -> datetime:
    if ts is None:
        return default
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _to_us(ts: datetime) -> int:
    return (ts - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


def _source_path(config, fv) -> Path:
    source = fv.batch_source
    if not isinstance(source, FileSource):
        raise SourceNotSupportedError(f"{fv.name}: source {source.name} is a {type(source).__name__}, "
                                      "not a Parquet FileSource; use `feast materialize` for it")
    path = Path(source.path)
    return path if path.is_absolute() else Path(config.repo_path or ".") / path


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    """Event times as int64 microseconds since the epoch (UTC), whatever the stored unit."""
    t = column.type
    if pa.types.is_timestamp(t):
        return pc.cast(column, pa.timestamp("us", tz=t.tz)).cast(pa.int64()).to_numpy()
    raise SourceNotSupportedError(f"event_timestamp is {t}, not a timestamp")


def plan(path: Path, ts_field: str, created_field: str | None, start_us: int, end_us: int,
         join_key: str = "item_id") -> tuple[np.ndarray, int, int]:
    """Row numbers to write (the latest row per item inside the window) + rows in source / window."""
    cols = [join_key, ts_field] + ([created_field] if created_field else [])
    table = pq.read_table(path, columns=cols)
    ids = table[join_key].to_numpy()
    ts = _micros(table[ts_field])
    created = _micros(table[created_field]) if created_field else np.zeros(len(ids), np.int64)
    rows = np.arange(len(ids))
    inside = (ts >= start_us) & (ts <= end_us)
    rows, ids, ts, created = rows[inside], ids[inside], ts[inside], created[inside]
    # Sort by (item, ts, created, row) and keep each item's last: lexsort's last key is primary.
    order = np.lexsort((rows, created, ts, ids))
    ids_sorted = ids[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = ids_sorted[1:] != ids_sorted[:-1]
    return np.sort(rows[order][last]), len(table), int(inside.sum())


def _batches(path: Path, columns: list[str], batch_size: int):
    """(first row number, RecordBatch) over the file, in order, batch_size rows at a time."""
    start = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns):
        yield start, batch
        start += batch.num_rows


def materialize_embeddings(store: FeatureStore, version: int, start_date: datetime | None = None,
                           end_date: datetime | None = None, batch_size: int = 10_000, progress: bool = True,
                           incremental: bool = False,
                           on_batch: Callable[[int], None] | None = None) -> MaterializeResult:
    """Write embedding view `version` from its offline source into the online store (see module doc).

    `incremental` starts where the last materialization of the view ended. `on_batch(rows_done)`
    is called after every written batch (progress hooks; tests use it to interrupt a run).
    """
    name = embedding_view_name(version)
    fv = store.get_feature_view(name)
    end = _utc(end_date, datetime.now(timezone.utc))
    start = _utc(start_date, (fv.most_recent_end_time if incremental and fv.most_recent_end_time else DEFAULT_START))
    online_store = store.provider.online_store
    result = write_embedding_view(store.config, online_store, fv, start, end, batch_size, progress, on_batch)
    # Only a complete run records its interval, exactly as feast materialize does.
    store.registry.apply_materialization(fv, store.project, start, end)
    if progress:
        print(result.summary())
    return result


def write_embedding_view(config, online_store, fv, start: datetime, end: datetime, batch_size: int = 10_000,
                         progress: bool = True, on_batch: Callable[[int], None] | None = None) -> MaterializeResult:
    """Steps 1-3 of the module doc for one registered embedding view; the registry is not touched."""
    t0 = time.perf_counter()
    name = fv.name
    emb = embedding_spec_of(fv)
    if emb is None:
        raise ValueError(f"{name} has no moon.embedding_version / moon.dim tags; declare it as the embedding "
                         "views of moon_features/store/template/features.py are")
    start, end = _utc(start, DEFAULT_START), _utc(end, datetime.now(timezone.utc))
    path = _source_path(config, fv)
    ts_field = fv.batch_source.timestamp_field
    created_field = fv.batch_source.created_timestamp_column or None
    join_key = fv.join_keys[0]
    layout = ViewLayout.of(fv, versioning_enabled(config))
    writer = _RedisWriter(config, layout) if is_redis_config(config) else _FeastWriter(config, online_store, fv)
    writer.check()  # unreachable store: fail before reading anything, write nothing

    start_us, end_us = _to_us(start), _to_us(end)
    rows, n_source, n_window = plan(path, ts_field, created_field, start_us, end_us, join_key)
    columns = [join_key, ts_field, EMBEDDING_FIELD]

    validate_source(path, columns, start_us, end_us, emb.dim, name, batch_size)

    written = skipped = 0
    bar = tqdm(total=len(rows), desc=f"materialize {name}", unit="rows", disable=not progress)
    failed = True
    try:
        for first, batch in _batches(path, columns, batch_size):
            local = rows[(rows >= first) & (rows < first + batch.num_rows)] - first
            if not len(local):
                continue
            if len(local) < batch.num_rows:  # superseded or out-of-window rows in this batch
                batch = batch.take(pa.array(local))
            ids = batch.column(0).to_numpy().astype(np.int64)
            ts_us = _micros(pa.chunked_array([batch.column(1)]))
            matrix = embedding_matrix(ids, batch.column(2), emb.dim, name)
            w, s = writer.write(ids, ts_us, matrix)
            written += w
            skipped += s
            bar.update(len(local))
            if on_batch:
                on_batch(written + skipped)
        failed = False
    finally:
        writer.finish(failed)  # waits for the last batch; after a failure, drains what was sent
        bar.close()
    return MaterializeResult(name, n_source, n_window, written, skipped, time.perf_counter() - t0)


def validate_source(path: Path, columns: list[str], start_us: int, end_us: int, dim: int, name: str,
                    batch_size: int) -> None:
    """Check every row in the window, batch by batch; one error naming all bad items, or None.

    A bad vector anywhere refuses the whole write: nothing has been written when this raises.
    """
    messages, bad_ids, bad_batches = [], [], 0
    for _, batch in _batches(path, columns, batch_size):
        ts = _micros(pa.chunked_array([batch.column(1)]))
        inside = (ts >= start_us) & (ts <= end_us)
        if not inside.any():
            continue
        if not inside.all():
            batch = batch.take(pa.array(np.flatnonzero(inside)))
        try:
            embedding_matrix(batch.column(0).to_numpy(), batch.column(2), dim, name)
        except EmbeddingValidationError as e:
            bad_batches += 1
            if len(messages) < 3:
                messages.append(str(e))
            bad_ids.extend(e.item_ids)
    if bad_ids:
        more = f" (and {bad_batches - 3} more batches)" if bad_batches > 3 else ""
        raise EmbeddingValidationError(
            f"{len(bad_ids):,} rows of {name} refused, nothing was written: " + "; ".join(messages) + more, bad_ids)


def _newer(stored: bytes | None, stamp: bytes, ts_us) -> bool:
    """Feast's rule: a row is written only if strictly newer than the stored one."""
    return stored is None or (stored != stamp and codec.decode_timestamp_ns(stored) < int(ts_us) * 1000)


class _RedisWriter:
    """HSETs in Feast's layout over one pipelined connection per batch."""

    def __init__(self, config, layout: ViewLayout):
        from .redis_connection import RedisTransport

        self.config = config.online_store
        self.transport = RedisTransport(self.config)
        self.project = config.project
        self.join_key = layout.join_key
        self.ts_field = layout.ts_field
        self.emb_field = layout.feature(EMBEDDING_FIELD).field
        self.ttl = getattr(self.config, "key_ttl_seconds", None)
        self.skip_dedup = bool(getattr(self.config, "skip_dedup", False))
        self.stream = None

    def check(self) -> None:
        self.transport.ping()

    def write(self, ids: np.ndarray, ts_us: np.ndarray, matrix: np.ndarray) -> tuple[int, int]:
        """Queue one batch: (rows written, rows skipped because the store already held them).

        The HSETs are sent without waiting; their replies are read with the next batch's
        timestamp read (or in finish()), so Redis writes batch k while we prepare batch k+1.
        """
        from .redis_connection import pack_rows

        if self.transport.is_cluster:
            return self._write_cluster(ids, ts_us, matrix)
        if self.stream is None:
            self.stream = self.transport.stream()
        n = len(ids)
        keys = codec.int64_key_matrix(self.join_key, ids, self.project)
        stamps = codec.encode_timestamps_us(ts_us)
        keep = np.ones(n, dtype=bool)
        if self.skip_dedup:
            self.stream.collect()
        else:
            self.stream.send(pack_rows([b"HMGET", keys, self.ts_field], n), n)
            stored = self.stream.collect()[-n:]  # earlier replies: the previous batch's HSETs
            for i, reply in enumerate(stored):
                keep[i] = _newer(reply[0], stamps[i], ts_us[i])
        rows = np.flatnonzero(keep)
        payload, count = self._pack_hsets(keys, stamps, matrix, rows)
        self.stream.send(payload, count)
        return len(rows), n - len(rows)

    def _pack_hsets(self, keys: np.ndarray, stamps: list[bytes], matrix: np.ndarray,
                    rows: np.ndarray) -> tuple[bytes, int]:
        """HSET (+ EXPIRE) of `rows` as one RESP payload: (payload, reply count)."""
        from .redis_connection import pack_rows

        lengths = np.fromiter((len(stamps[i]) for i in rows.tolist()), dtype=np.int64, count=len(rows))
        payload, count = [], 0
        # Every argument has a fixed width within a group of equal timestamp length, so numpy
        # packs each group's HSETs in one go (few groups: the varint lengths barely vary).
        for width in np.unique(lengths):
            grp = rows[lengths == width]
            ts_mat = np.frombuffer(b"".join([stamps[i] for i in grp]), np.uint8).reshape(len(grp), int(width))
            payload.append(pack_rows([b"HSET", keys[grp], self.ts_field, ts_mat, self.emb_field,
                                      codec.float_list_matrix(matrix[grp])], len(grp)))
            count += len(grp)
            if self.ttl:
                payload.append(pack_rows([b"EXPIRE", keys[grp], str(int(self.ttl)).encode()], len(grp)))
                count += len(grp)
        return b"".join(payload), count

    def _write_cluster(self, ids: np.ndarray, ts_us: np.ndarray, matrix: np.ndarray) -> tuple[int, int]:
        """Redis Cluster: rows grouped by their hash slot's node, one packed pipeline per node
        (cluster_transport.ClusterRouter), the same bytes as on a single Redis."""
        from .cluster_transport import key_slots
        from .redis_connection import pack_rows

        router = self.transport.router
        keys = codec.int64_key_matrix(self.join_key, ids, self.project)
        slots = key_slots(keys)
        stamps = codec.encode_timestamps_us(ts_us)
        keep = np.ones(len(ids), dtype=bool)
        if not self.skip_dedup:
            stored = router.execute(slots, lambda r: (pack_rows([b"HMGET", keys[r], self.ts_field], len(r)), len(r)))
            for rows, replies in stored:
                for i, reply in zip(rows.tolist(), replies):
                    keep[i] = _newer(reply[0], stamps[i], ts_us[i])
        rows = np.flatnonzero(keep)
        if len(rows):
            router.execute(slots[rows], lambda r: self._pack_hsets(keys, stamps, matrix, rows[r]), write=True)
        return len(rows), len(ids) - len(rows)

    def finish(self, failed: bool = False) -> None:
        if self.stream is None:
            return
        stream, self.stream = self.stream, None
        try:
            if not failed:
                stream.collect()
        finally:
            stream.close(failed)


class _FeastWriter:
    """Any other online store (SQLite): the same encoded bytes through the store's own writer."""

    def __init__(self, config, online_store, fv):
        self.config = config
        self.online_store = online_store
        self.fv = fv

    def check(self) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass

    def write(self, ids: np.ndarray, ts_us: np.ndarray, matrix: np.ndarray) -> tuple[int, int]:
        join_key = self.fv.join_keys[0]
        stamps = [datetime.fromtimestamp(int(t) // 1_000_000, tz=timezone.utc).replace(microsecond=int(t) % 1_000_000)
                  for t in ts_us]
        rows = [(EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=int(i))]),
                 {EMBEDDING_FIELD: Value.FromString(v)}, ts, None)
                for i, v, ts in zip(ids, codec.encode_float_lists(matrix), stamps)]
        self.online_store.online_write_batch(self.config, self.fv, rows, progress=None)
        return len(rows), 0
