"""Fast online lookups for ranking: item embeddings and profiles, user profile and sequence.

`OnlineReader(store, spec)` returns the reader for the store's online store type:
`RedisReader` (redis_reader.py: Feast's Redis layout read directly, one pipelined fan-out)
for Redis and Redis Cluster, `FeastReader` (feast_reader.py: stock `get_online_features`)
for any other online store (the embedded SQLite default). Both implement `OnlineReaderBase`
(reader_base.py) and return the same types; unknown ids are never an error: their rows are
zeros and their `found` flag is False.
"""
from __future__ import annotations

from feast import FeatureStore

from ..spec import FeatureSpec
from .configs import is_redis_config
from .feast_reader import FeastReader
from .reader_base import ItemBatch, OnlineLookup, OnlineReaderBase, UserRow


def is_redis(store: FeatureStore) -> bool:
    return is_redis_config(store.config)


def OnlineReader(store: FeatureStore, spec: FeatureSpec | None = None) -> OnlineReaderBase:  # noqa: N802
    """The online reader for `store` (named like a class: callers construct it as one)."""
    if is_redis(store):
        from .redis_reader import RedisReader  # optional backend (redis)

        return RedisReader(store, spec)
    return FeastReader(store, spec)


__all__ = ["OnlineReader", "OnlineReaderBase", "FeastReader", "ItemBatch", "UserRow",
           "OnlineLookup", "is_redis"]
