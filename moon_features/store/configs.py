"""What a moon-features Feast repo folder holds, and its feature_store.yaml variants.

Light on purpose (no Feast, no Redis import): the Feast definitions, the repo helpers and the
benches all read it. Three configurations, named for what they run:

* `sqlite_config`        the embedded default (SQLite online store, DuckDB offline store);
* `plugin_redis_config`  the moon-features plugin: MoonRedisOnlineStore + MoonComputeEngine;
* `stock_redis_config`   stock Feast over the same Redis: `type: redis` and Feast's local
                         compute engine, the baseline the benches compare the plugin against.
"""
from __future__ import annotations

SPEC_FILE = "spec.json"
DATA_DIR = "data"
CONFIG_FILE = "feature_store.yaml"

# the plugin's classes, by the dotted paths Feast resolves (moon_features.store.online_store / .engine)
STORE_TYPE = "moon_features.store.online_store.MoonRedisOnlineStore"
ENGINE_TYPE = "moon_features.store.engine.MoonComputeEngine"
# stock Feast: what `type: redis` and the default local batch engine resolve to
STOCK_STORE_CLASS = "feast.infra.online_stores.redis.RedisOnlineStore"
STOCK_ENGINE_CLASS = "feast.infra.compute_engines.local.compute.LocalComputeEngine"


def sqlite_config(project: str) -> str:
    return f"""project: {project}
provider: local
registry: {DATA_DIR}/registry.db
online_store:
  type: sqlite
  path: {DATA_DIR}/online.db
offline_store:
  type: duckdb
entity_key_serialization_version: 3
"""


def plugin_redis_config(project: str, connection_string: str = "${MOON_REDIS_URL}",
                        registry: str = f"{DATA_DIR}/registry_redis.db", redis_type: str = "redis",
                        fast_materialize: bool = True) -> str:
    """The production variant: Redis through the moon-features plugin store (stock Feast wire
    format, validated embedding writes) and, with fast_materialize, the fast batch engine."""
    engine = f"batch_engine:\n  type: {ENGINE_TYPE}\n" if fast_materialize else ""
    return f"""project: {project}
provider: local
registry: {registry}
online_store:
  type: {STORE_TYPE}
  redis_type: {redis_type}
  connection_string: "{connection_string}"
offline_store:
  type: duckdb
{engine}entity_key_serialization_version: 3
"""


def stock_redis_config(project: str, connection_string: str = "${MOON_REDIS_URL}",
                       registry: str = f"{DATA_DIR}/registry_stock.db", redis_type: str = "redis") -> str:
    """Stock Feast over Redis: `online_store: type: redis` and Feast's own local compute engine
    (explicitly, so no default of this project can slip into a baseline)."""
    return f"""project: {project}
provider: local
registry: {registry}
online_store:
  type: redis
  redis_type: {redis_type}
  connection_string: "{connection_string}"
offline_store:
  type: duckdb
batch_engine:
  type: local
entity_key_serialization_version: 3
"""


def is_redis_config(config) -> bool:
    """Whether a RepoConfig's online store is Redis (stock `type: redis` or the plugin store)."""
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig  # optional backend (redis)

    return isinstance(config.online_store, RedisOnlineStoreConfig)
