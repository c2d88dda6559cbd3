"""One test per Feast private name the plugin relies on (moon_features/store/feast_compat.py).

Each checks the behaviour relied on against stock Feast on the real Redis, so a Feast upgrade
that changes it fails here first, with the name in the test's title.
"""
from datetime import datetime, timedelta, timezone

import pytest
import redis
from feast import Entity, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.infra.common.materialization_job import MaterializationJobStatus, MaterializationTask
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.types import Int64

from moon_features.store import redis_codec as codec
from moon_features.store.feast_compat import (LocalEngineMaterializeHook, RedisStoreReadHook, redis_key,
                                              versioned_view_name)
from fixtures.store_repo import build_repo, delete_project_keys, unique_project
from moon_features.store.redis_connection import parse_connection_string
from moon_features.store.repo import apply_repo

REDIS = "127.0.0.1:6379"
TS = datetime(2026, 1, 5, tzinfo=timezone.utc)


@pytest.fixture()
def stock():
    """A stock RedisOnlineStore config of its own project, a one-feature view, and a row written
    by stock online_write_batch for user 7."""
    project = unique_project("mf_compat")
    config = RepoConfig(project=project, provider="local", registry="unused/registry.db",
                        online_store={"type": "redis", "connection_string": REDIS},
                        entity_key_serialization_version=3)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    view = FeatureView(name="user_clicks", entities=[user], schema=[Field(name="clicks", dtype=Int64)],
                       source=FileSource(path="unused.parquet", timestamp_field="event_timestamp"))
    store = RedisOnlineStore()
    store.online_write_batch(config, view, [(entity(7), {"clicks": Value(int64_val=3)}, TS, None)], None)
    yield config, view, store
    delete_project_keys(project, REDIS)


def entity(user_id: int) -> EntityKey:
    return EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=user_id)])


def stored_hash(config, user_id: int) -> dict:
    client = redis.Redis.from_url(f"redis://{REDIS}")
    try:
        return client.hgetall(redis_key(config.project, entity(user_id), 3))
    finally:
        client.close()


def test_versioned_fv_name_is_the_name_feast_writes_fields_under(stock):
    config, view, _ = stock
    name = versioned_view_name(view, config)
    assert name == "user_clicks"  # versioning off (the default): our codec's field names assume it
    fields = stored_hash(config, 7)
    assert set(fields) == {f"_ts:{name}".encode(), codec.feature_field(name, "clicks")}


def test_redis_key_is_the_key_feast_writes_and_our_codec_packs(stock):
    config, view, _ = stock
    key = redis_key(config.project, entity(7), 3)
    assert key == serialize_entity_key(entity(7), entity_key_serialization_version=3) + config.project.encode()
    assert key == codec.redis_keys("user_id", [7], config.project)[0]
    assert stored_hash(config, 7)  # stock wrote exactly that key


def test_read_hash_fields_gets_every_hmget_of_an_online_read(stock):
    config, view, _ = stock
    calls = []

    class Recording(RedisStoreReadHook):
        def read_hash_fields(self, config, commands):
            calls.append(list(commands))
            return super().read_hash_fields(config, commands)

    rows = Recording().online_read(config, view, [entity(7), entity(8)], ["clicks"])
    assert len(calls) == 1 and [key for key, _ in calls[0]] == [redis_key(config.project, entity(i), 3) for i in (7, 8)]
    (ts, values), missing = rows
    assert ts == TS and values["clicks"].int64_val == 3
    assert missing[1]["clicks"].WhichOneof("val") is None  # an absent key: an empty value


def test_materialize_one_is_called_once_per_task(tmp_path):
    repo, _ = build_repo(tmp_path, online="sqlite", n_items=30, dim=16)
    store = apply_repo(repo)
    tasks_seen = []

    class Recording(LocalEngineMaterializeHook):
        def materialize_one(self, registry, task, **kwargs):
            tasks_seen.append(task.feature_view.name)
            return super().materialize_one(registry, task, **kwargs)

    engine = Recording(repo_config=store.config, offline_store=store.provider.offline_store,
                       online_store=store.provider.online_store)
    end = datetime.now(timezone.utc)
    views = [store.get_feature_view(n) for n in ("item_profile", "item_moon_embedding_v1")]
    tasks = [MaterializationTask(project=store.project, feature_view=fv, start_time=end - timedelta(days=20_000),
                                 end_time=end) for fv in views]
    jobs = engine.materialize(store.registry, tasks)
    assert tasks_seen == ["item_profile", "item_moon_embedding_v1"]
    assert [j.status() for j in jobs] == [MaterializationJobStatus.SUCCEEDED] * 2
    got = store.get_online_features(features=["item_profile:brand", "item_moon_embedding_v1:embedding"],
                                    entity_rows=[{"item_id": 1}]).to_dict()
    assert got["brand"][0] is not None and len(got["embedding"][0]) == 16


@pytest.mark.parametrize("text", ["127.0.0.1:6379", "10.0.0.1:7000,10.0.0.2:7001,ssl=true,password=x",
                                  "redis:6380,db=2,socket_timeout=0.5"])
def test_parse_connection_string_matches_feasts(text):
    """redis_connection re-implements RedisOnlineStore._parse_connection_string (a staticmethod)."""
    nodes, params = RedisOnlineStore._parse_connection_string(text)
    assert parse_connection_string(text) == ([(n["host"], int(n["port"])) for n in nodes], params)
