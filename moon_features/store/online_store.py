"""MoonRedisOnlineStore: Feast's Redis online store with the moon-features fast paths plugged in.

Named by dotted path in feature_store.yaml, so `feast apply`, `feast materialize`, `feast push`
and `feast serve` go through it (see `configs.plugin_redis_config`):

* every write into an embedding view (materialize, push, write_to_online_store) is validated
  against the view's moon.dim tag first; one bad vector refuses the whole batch, naming the
  items, before anything is written;
* writes and reads use one pre-packed pipelined round trip each (RedisTransport) instead of
  redis-py's per-command pipeline objects; the stored bytes are exactly stock Feast's;
* an unreachable Redis raises OnlineStoreUnavailableError naming the address.

The stock interface still hands values over as ValueProto objects, so the per-value protobuf
cost of `get_online_features` / `feast materialize` remains; OnlineReader and the
MoonComputeEngine (engine.py) are the paths that avoid it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
from feast import FeatureView, RepoConfig, utils
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

from ..spec import EMBEDDING_FIELD
from . import redis_codec as codec
from .definitions import embedding_spec_of
from .errors import EmbeddingValidationError
from .feast_compat import RedisStoreReadHook, redis_key, versioned_view_name
from .redis_connection import RedisTransport, pack_command
from .validation import check_finite

STORE_TYPE = "moon_features.store.online_store.MoonRedisOnlineStore"
ENGINE_TYPE = "moon_features.store.engine.MoonComputeEngine"


class MoonRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Same options as Feast's `type: redis` (connection_string, redis_type, key_ttl_seconds, ...)."""

    type: Literal["moon_features.store.online_store.MoonRedisOnlineStore"] = STORE_TYPE  # type: ignore[assignment]
    wait_replicas: int = 0
    """Redis Cluster: end every node's write with WAIT n; a write returns once n replicas hold it."""
    wait_timeout_ms: int = 1000
    """How long WAIT waits for the replicas before the write fails with ReplicationTimeoutError."""


def _entity_id(entity_key: EntityKeyProto):
    value = entity_key.entity_values[0]
    return getattr(value, value.WhichOneof("val") or "int64_val")


def validate_embedding_rows(table: FeatureView, data: Sequence[tuple]) -> None:
    """Refuse a write into an embedding view unless every row has `dim` finite float32 values."""
    spec = embedding_spec_of(table)
    if spec is None:
        return
    ids = np.array([_entity_id(k) for k, _, _, _ in data], dtype=object)
    encoded = []
    for _, values, _, _ in data:
        v = values.get(EMBEDDING_FIELD)
        encoded.append(v.SerializeToString() if v is not None else None)
    matrix, found, bad = codec.decode_float_lists(encoded, spec.dim)
    if (~found).any():
        wrong = ids[~found]
        raise EmbeddingValidationError(
            f"{table.name}: items {', '.join(map(str, wrong[:5]))}{' and more' if len(wrong) > 5 else ''} "
            f"have no embedding, a non-float value, or a vector whose length is not {spec.dim}; nothing was written",
            wrong)
    check_finite(ids, matrix, spec.dim, table.name)


class MoonRedisOnlineStore(RedisStoreReadHook):
    _transport: Optional[RedisTransport] = None

    def _get_transport(self, online_config) -> RedisTransport:
        if self._transport is None:
            self._transport = RedisTransport(online_config)
        return self._transport

    # Reads: every HMGET of a get_online_features call in one packed write (Feast hands us the list).
    def read_hash_fields(self, config: RepoConfig, commands):
        transport = self._get_transport(config.online_store)
        if transport.is_cluster:  # keys on many nodes: one packed pipeline per node
            requests: list = []
            for key, fields in commands:  # runs of keys with the same fields: one request each
                fields = [f if isinstance(f, bytes) else f.encode() for f in fields]
                if requests and requests[-1][1] == fields:
                    requests[-1][0].append(key)
                else:
                    requests.append(([key], fields))
            return transport.hmget_many(requests)
        payload = b"".join(pack_command((b"HMGET", key, *[f if isinstance(f, bytes) else f.encode() for f in fields]))
                           for key, fields in commands)
        return transport.execute_packed(payload, len(commands))

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: List[Tuple[EntityKeyProto, Dict[str, ValueProto], datetime, Optional[datetime]]],
        progress: Optional[Callable[[int], Any]],
    ) -> None:
        validate_embedding_rows(table, data)
        if not data:
            return
        online_config = config.online_store
        transport = self._get_transport(online_config)
        view = versioned_view_name(table, config)
        ts_field = codec.timestamp_field(view)
        keys = [_redis_key_bytes(k, config) for k, _, _, _ in data]
        fields = {f.name: codec.feature_field(view, f.name) for f in table.features}
        stamps = [_timestamp_bytes(ts) for _, _, ts, _ in data]
        new_ns = [codec.decode_timestamp_ns(s) for s in stamps]
        if online_config.skip_dedup:
            keep = list(range(len(data)))
        else:
            stored = transport.hmget_many([(keys, [ts_field])])
            # Feast's rule: write a row only if it is newer than the store and than any earlier
            # row of this batch with the same key.
            latest: Dict[bytes, int] = {}
            keep = []
            for i, (key, reply) in enumerate(zip(keys, stored)):
                seen = max(codec.decode_timestamp_ns(reply[0]) or 0, latest.get(key, 0))
                if seen and new_ns[i] <= seen:
                    continue
                latest[key] = new_ns[i]
                keep.append(i)
        commands = []
        for i in keep:
            args = [b"HSET", keys[i], ts_field, stamps[i]]
            for name, value in data[i][1].items():
                args += [fields.get(name) or codec.feature_field(view, name), value.SerializeToString()]
            commands.append(args)
            if online_config.key_ttl_seconds:
                commands.append((b"EXPIRE", keys[i], str(int(online_config.key_ttl_seconds)).encode()))
        transport.execute_commands(commands)  # cluster: grouped by node, WAIT if wait_replicas
        if progress:
            progress(len(data))


def _redis_key_bytes(entity_key: EntityKeyProto, config: RepoConfig) -> bytes:
    return redis_key(config.project, entity_key, config.entity_key_serialization_version)


def _timestamp_bytes(ts: datetime) -> bytes:
    proto = Timestamp()
    proto.FromDatetime(utils.make_tzaware(ts))
    return proto.SerializeToString()
