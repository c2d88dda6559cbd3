"""Redis Cluster for real: a 3-master + 3-replica cluster on loopback ports, started here.

On it: the bulk writer (grouped by hash slot's node) against stock `feast materialize`, byte for
byte; the plugin store + engine through `feast materialize`; the fast reader against stock
get_online_features; the sequence append; the scorer's offline == online check; and a failover
that kills a master while acknowledged (WAIT 1) writes go on.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import redis

from moon_features.errors import MoonFeaturesError
from moon_features.spec import EMBEDDING_FIELD, ITEM_PROFILE_VIEW
from moon_features.store.bulk_writer import materialize_embeddings
from moon_features.store.cluster_transport import key_slots
from fixtures.store_repo import build_repo, stock_redis_yaml, unique_project
from moon_features.store.local_cluster import LocalRedisCluster
from moon_features.store.online_reader import OnlineReader
from moon_features.store.configs import plugin_redis_config
from moon_features.store.online_store import MoonRedisOnlineStoreConfig
from moon_features.store.push import append_positive_event, current_sequence
from moon_features.store.redis_connection import RedisTransport
from moon_features.store.repo import apply_repo

START = pd.Timestamp("1970-01-02", tz="UTC")
VIEW = "item_moon_embedding_v1"
N_ITEMS, N_EXTRA, DIM = 60, 400, 32


@pytest.fixture(scope="session")
def cluster():
    c = LocalRedisCluster().start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def repo(tmp_path_factory, cluster):
    repo, spec = build_repo(tmp_path_factory.mktemp("cluster"), online="sqlite", n_items=N_ITEMS, dim=DIM,
                            extra_embedding_items=N_EXTRA, max_len=8)

    def open_project(kind: str):
        project = unique_project("mf_cluster")
        config = repo / f"feature_store.{project}.yaml"
        registry = f"data/registry_{project}.db"
        config.write_text(plugin_redis_config(project, cluster.connection_string, registry=registry,
                                            redis_type="redis_cluster") if kind == "plugin"
                          else stock_redis_yaml(project, cluster.connection_string, "redis_cluster", registry))
        return apply_repo(repo, config)

    return repo, spec, open_project


def by_entity(snapshot: dict, project: str) -> dict:
    """Feast's entity hashes without the project suffix (the plugin's materialization marker aside)."""
    return {k[:-len(project)]: v for k, v in snapshot.items() if not k.startswith(b"moon_features:")}


def test_key_slots_match_redis(cluster):
    from redis.crc import key_slot

    from moon_features.store import redis_codec as codec

    ids = np.concatenate([np.arange(0, 5000), [0x7B, 0x7D7B00, 0x7B7D7B, 2**40 + 0x7B, -1]]).astype(np.int64)
    for project in ("shop", "shop{tag}"):  # ids with '{' / '}' bytes, and a real hash tag
        matrix = codec.int64_key_matrix("item_id", ids, project)
        keys = codec.redis_keys("item_id", ids, project)
        want = [key_slot(k) for k in keys]
        assert key_slots(matrix).tolist() == want == key_slots(keys).tolist()
        assert len(set(want)) > 3000 if project == "shop" else len(set(want)) < 100


def test_bulk_writer_equals_stock_materialize_byte_for_byte(repo, cluster):
    repo, spec, open_project = repo
    stock = open_project("stock")
    stock.materialize(start_date=START, end_date=pd.Timestamp.now(tz="UTC"), feature_views=[VIEW])
    fast = open_project("stock")
    result = materialize_embeddings(fast, 1, batch_size=128, progress=False)
    assert result.items_written == N_ITEMS + N_EXTRA and result.items_skipped == 0
    a = by_entity(cluster.snapshot(stock.config.project), stock.config.project)
    b = by_entity(cluster.snapshot(fast.config.project), fast.config.project)
    assert len(a) == N_ITEMS + N_EXTRA and a == b
    # Keys landed on every master, and a re-run finds everything current.
    assert len({RedisTransport(fast.config.online_store).client.get_node_from_key(k).name for k in
                (k + fast.config.project.encode() for k in b)}) == 3
    again = materialize_embeddings(fast, 1, batch_size=128, progress=False)
    assert again.items_written == 0 and again.items_skipped == N_ITEMS + N_EXTRA
    # Stock Feast reads the bulk writer's rows.
    ids = [1, 33, N_ITEMS + 7, 10**9]
    got = fast.get_online_features(features=[f"{VIEW}:{EMBEDDING_FIELD}"],
                                   entity_rows=[{"item_id": i} for i in ids]).to_dict()[EMBEDDING_FIELD]
    want = stock.get_online_features(features=[f"{VIEW}:{EMBEDDING_FIELD}"],
                                     entity_rows=[{"item_id": i} for i in ids]).to_dict()[EMBEDDING_FIELD]
    assert got == want and got[-1] is None and len(got[0]) == DIM


@pytest.fixture(scope="module")
def plugin_store(repo, cluster):
    """Every view through `feast materialize` with the plugin store and its engine, and a stock twin."""
    _, _, open_project = repo
    plugin, stock = open_project("plugin"), open_project("stock")
    for s in (plugin, stock):
        s.materialize(start_date=START, end_date=pd.Timestamp.now(tz="UTC"))
    return plugin, stock


def test_plugin_feast_materialize_equals_stock(plugin_store, cluster):
    plugin, stock = plugin_store
    a = by_entity(cluster.snapshot(plugin.config.project), plugin.config.project)
    b = by_entity(cluster.snapshot(stock.config.project), stock.config.project)
    assert len(a) > N_ITEMS + N_EXTRA and a == b  # items, users, sequences and embeddings


def test_fast_reader_equals_stock_on_cluster(plugin_store, repo):
    plugin, stock = plugin_store
    spec = repo[1]
    reader = OnlineReader(plugin, spec)
    assert reader.backend == "redis" and reader._redis.is_cluster
    ids = np.array([1, 5, 44, N_ITEMS + 3, 10**9, 5], dtype=np.int64)
    batch = reader.items(ids)
    refs = [f"{v}:{f.name}" for v in (ITEM_PROFILE_VIEW, VIEW) for f in reader._view(v).features]
    want = stock.get_online_features(features=refs, entity_rows=[{"item_id": int(i)} for i in ids]).to_dict()
    for i, v in enumerate(want[EMBEDDING_FIELD]):
        assert batch.embedding_found[i] == (v is not None)
        assert np.array_equal(batch.embeddings[i], np.zeros(DIM, np.float32) if v is None else np.float32(v))
    for name, col in batch.profiles.items():
        assert np.array_equal(col, np.asarray([0 if v is None else v for v in want[name]], col.dtype)), name
    user = 3
    lookup = reader.lookup(user, ids)
    hist = lookup.user.hist_item_ids
    assert lookup.round_trips == 2 and len(hist) == lookup.user.hist_len > 0
    assert np.array_equal(lookup.history.embeddings, reader.items(hist).embeddings)


def test_sequence_append_on_cluster(plugin_store, repo):
    plugin, _ = plugin_store
    spec = repo[1]
    user = 4
    before, _ = current_sequence(plugin, user)
    t0 = pd.Timestamp.now(tz="UTC").floor("s")
    for k, item in enumerate([901, 902]):
        append_positive_event(plugin, spec, user, item, t0 + pd.Timedelta(seconds=k))
    want = (before + [901, 902])[-spec.max_len:]
    assert current_sequence(plugin, user)[0] == want
    assert OnlineReader(plugin, spec).user_features(user).hist_item_ids.tolist() == want


def test_scorer_offline_equals_online_on_cluster(tmp_path_factory, cluster):
    from moon_features.consistency import check_consistency
    from fixtures.serving_setup import build_serving_setup
    from moon_features.store.repo import materialize_all

    s = build_serving_setup(tmp_path_factory.mktemp("cluster_scorer"), online="redis", n_items=80, materialize=False)
    config = s.repo / "cluster.yaml"
    config.write_text(plugin_redis_config(s.project, cluster.connection_string, registry="data/registry_cluster.db",
                                        redis_type="redis_cluster"))
    store = apply_repo(s.repo, config)
    materialize_all(store)
    report = check_consistency(store, s.model_dir, n_rows=40, seed=1)
    assert report.backend == "redis" and report.ok, report.line()
    assert report.rows["online"].std() > 1e-4


def _write_batches(transport, written: dict, events: list, until, batch: int = 20):
    """Acknowledged writes: a batch counts only when every node's part returned and WAIT 1 held."""
    k = len(events)
    while not until():
        keys = [b"failover:%d:%d" % (k, i) for i in range(batch)]
        t = time.monotonic()
        try:
            transport.execute_commands([(b"HSET", key, b"v", b"%d" % k) for key in keys])
            written.update({key: b"%d" % k for key in keys})
            events.append((t, time.monotonic(), None))
        except (MoonFeaturesError, redis.RedisError) as e:
            events.append((t, time.monotonic(), type(e).__name__))
            time.sleep(0.05)
        k += 1


def test_failover_loses_no_acknowledged_write():
    with LocalRedisCluster(node_timeout_ms=1000) as c:
        config = MoonRedisOnlineStoreConfig(connection_string=c.connection_string, redis_type="redis_cluster",
                                            wait_replicas=1, wait_timeout_ms=300)
        transport = RedisTransport(config)
        written, events = {}, []
        t_end = time.monotonic() + 0.5
        _write_batches(transport, written, events, lambda: time.monotonic() > t_end)
        victim = c.masters()[0]
        t_kill = time.monotonic()
        c.kill(victim)
        deadline = t_kill + 60

        def promoted():
            return len(c.masters()) == 3 or time.monotonic() > deadline
        _write_batches(transport, written, events, promoted)
        t_promoted = time.monotonic()
        c.restart(victim)  # it rejoins as the new master's replica, so WAIT 1 can succeed again
        ok_since = []

        def settled():
            if events[-1][2] is None:
                ok_since.append(1)
            else:
                ok_since.clear()
            return len(ok_since) >= 20 or time.monotonic() > deadline
        _write_batches(transport, written, events, settled)

        failures = [t for t, _, err in events if err and t >= t_kill]
        assert failures, "killing a master must interrupt acknowledged writes"
        # Error window: from the kill to the end of the first acknowledged batch after the last failure.
        window = min(done for t, done, err in events if err is None and t > max(failures)) - t_kill
        kinds = sorted({err for _, _, err in events if err})
        print(f"\nfailover: promoted after {t_promoted - t_kill:.2f} s, acknowledged writes resumed after "
              f"{window:.2f} s ({len(failures)} failed batches: {kinds}); {len(written):,} acknowledged keys")
        assert len(ok_since) >= 20 and c.role(victim) == "slave"
        # Every acknowledged write is readable after the failover, with its value.
        reader = redis.cluster.RedisCluster(host="127.0.0.1", port=c.alive_ports()[0])
        keys = list(written)
        got = [reader.hget(k, b"v") for k in keys]
        lost = [k for k, v in zip(keys, got) if v != written[k]]
        reader.close()
        transport.close()
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
