"""Every use of a Feast private name, in one place; tests/test_feast_compat.py checks each one.

The plugin extends Feast through its public extension points (online store and batch engine
classes named by dotted path in feature_store.yaml), but two of the hooks it overrides and two
helpers that define Redis's wire layout are private in Feast 0.67. Upgrading Feast means
running tests/test_feast_compat.py: each test fails if the behaviour relied on here changes.

* `versioned_view_name`   feast.infra.online_stores.redis._versioned_fv_name: the view name
                          Feast's Redis store writes under (`_ts:<name>`, mmh3("<name>:<feature>")).
* `redis_key`             feast.infra.online_stores.helpers._redis_key: an entity's Redis key.
* `RedisStoreReadHook`    RedisOnlineStore._read_hash_fields: online_read (and the async /
                          batched reads) hand every HMGET of a call to it as [(key, fields)].
* `LocalEngineMaterializeHook`  ComputeEngine._materialize_one: materialize() calls it once
                          per (view, window) task and returns its jobs.

Layouts the project re-implements rather than calls (the numpy key / field packer in
redis_codec, connection-string parsing in redis_connection) are checked against Feast's own
functions in tests/test_store_codec.py and tests/test_feast_compat.py.
"""
from __future__ import annotations

from feast.infra.compute_engines.local.compute import LocalComputeEngine
from feast.infra.online_stores.helpers import _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name


def versioned_view_name(view, config) -> str:
    """The name Feast's Redis store keys a view's fields by (the view name unless online
    feature-view versioning is on)."""
    return _versioned_fv_name(view, config)


def redis_key(project: str, entity_key, serialization_version: int) -> bytes:
    """An entity's Redis key as Feast writes it: serialized entity key + project name."""
    return _redis_key(project, entity_key, entity_key_serialization_version=serialization_version)


class RedisStoreReadHook(RedisOnlineStore):
    """Feast's Redis online store whose hash reads go through `read_hash_fields`: override that."""

    def _read_hash_fields(self, config, commands):
        return self.read_hash_fields(config, commands)

    def read_hash_fields(self, config, commands):
        """One HMGET reply (a list of values or None) per (key, fields) command, in order."""
        return RedisOnlineStore._read_hash_fields(self, config, commands)


class LocalEngineMaterializeHook(LocalComputeEngine):
    """Feast's local compute engine whose per-task materialization is `materialize_one`: override it."""

    def _materialize_one(self, registry, task, **kwargs):
        return self.materialize_one(registry, task, **kwargs)

    def materialize_one(self, registry, task, **kwargs):
        """Feast's own path for one MaterializationTask; returns its MaterializationJob."""
        return LocalComputeEngine._materialize_one(self, registry, task, **kwargs)
