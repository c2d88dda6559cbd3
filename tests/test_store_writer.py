"""Fast write, stock read: the bulk writer and the Feast plugin classes against real Redis and SQLite.

Three Feast projects over one repo's sources: `stock` (type: redis, feast materialize), `fast`
(materialize_embeddings) and `plugin` (MoonRedisOnlineStore + MoonComputeEngine, feast
materialize). Their Redis hashes must be byte-identical, and stock get_online_features must
return the source's vectors.
"""
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from moon_features.spec import EMBEDDING_FIELD
from moon_features.store.bulk_writer import materialize_embeddings
from moon_features.store.errors import EmbeddingValidationError, OnlineStoreUnavailableError
from moon_features.store.markers import MarkerStore
from fixtures.store_repo import (build_repo, delete_project_keys, embedding_table, project_snapshot,
                                          unique_project, unit_vectors, write_embedding_source)
from moon_features.store.configs import (ENGINE_TYPE, STOCK_ENGINE_CLASS, STOCK_STORE_CLASS, STORE_TYPE,
                                         stock_redis_config)
from moon_features.store.configs import plugin_redis_config
from moon_features.store.repo import DATA_DIR, apply_repo

REDIS = "127.0.0.1:6379"
START = pd.Timestamp("1970-01-02", tz="UTC")
N_EXTRA = 500  # embeddings for ids beyond the shop: several batches
VIEW = "item_moon_embedding_v1"


def stock_yaml(project, registry):
    """Stock Feast: online_store type redis, Feast's local compute engine (no plugin class)."""
    return stock_redis_config(project, REDIS, registry=f"data/{registry}")


def classes(store) -> tuple[str, str]:
    """The online store and batch engine classes Feast built for a store (what a baseline really ran)."""
    return tuple(f"{type(o).__module__}.{type(o).__qualname__}"
                 for o in (store.provider.online_store, store.provider.batch_engine))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo, spec = build_repo(tmp_path_factory.mktemp("writer"), online="sqlite", n_items=60, dim=32,
                            extra_embedding_items=N_EXTRA)
    projects = []

    def open_project(kind, name=None):
        project = name or unique_project()
        projects.append(project)
        config = repo / f"feature_store.{project}.yaml"
        text = (plugin_redis_config(project, REDIS, registry=f"data/registry_{project}.db") if kind == "plugin"
                else stock_yaml(project, f"registry_{project}.db"))
        config.write_text(text)
        store = apply_repo(repo, config)
        assert classes(store) == ((STORE_TYPE, ENGINE_TYPE) if kind == "plugin"
                                  else (STOCK_STORE_CLASS, STOCK_ENGINE_CLASS))
        return store

    yield repo, spec, open_project
    for p in projects:
        delete_project_keys(p, REDIS)


def source_vectors(repo):
    t = pq.read_table(repo / DATA_DIR / f"{VIEW}.parquet").to_pandas()
    return dict(zip(t["item_id"], t["embedding"]))


def test_fast_write_equals_stock_bytes_and_stock_reads_it(repo):
    repo, spec, open_project = repo
    stock = open_project("stock")
    stock.materialize(start_date=START, end_date=pd.Timestamp.now(tz="UTC"), feature_views=[VIEW])
    fast = open_project("stock")
    result = materialize_embeddings(fast, 1, batch_size=128, progress=False)
    assert result.items_written == 60 + N_EXTRA and result.items_skipped == 0
    a, b = project_snapshot(stock.config.project, REDIS), project_snapshot(fast.config.project, REDIS)
    assert len(a) == 60 + N_EXTRA and a == b  # byte-identical hashes, timestamps included

    src = source_vectors(repo)
    ids = [1, 17, 60, 61, 60 + N_EXTRA, 10**9]
    got = fast.get_online_features(features=[f"{VIEW}:{EMBEDDING_FIELD}"],
                                   entity_rows=[{"item_id": i} for i in ids]).to_dict()[EMBEDDING_FIELD]
    for i, v in zip(ids, got):
        assert (v is None) if i not in src else np.array_equal(np.asarray(v, np.float32), src[i])

    # The registry records the interval as feast materialize does.
    intervals = fast.get_feature_view(VIEW).materialization_intervals
    assert len(intervals) == 1 and intervals[0][0] == START.to_pydatetime()

    # Idempotent: a re-run writes nothing new and leaves the same bytes.
    again = materialize_embeddings(fast, 1, batch_size=128, progress=False)
    assert again.items_written == 0 and again.items_skipped == 60 + N_EXTRA
    assert project_snapshot(fast.config.project, REDIS) == a


def test_interrupted_write_then_rerun_completes(repo):
    repo, spec, open_project = repo
    store = open_project("stock")

    def die_after_first_batch(done):
        raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        materialize_embeddings(store, 1, batch_size=100, progress=False, on_batch=die_after_first_batch)
    partial = project_snapshot(store.config.project, REDIS)
    assert 0 < len(partial) < 60 + N_EXTRA
    assert store.get_feature_view(VIEW).materialization_intervals == []  # no interval for a broken run
    result = materialize_embeddings(store, 1, batch_size=100, progress=False)
    assert result.items_written == 60 + N_EXTRA - len(partial)
    reference = open_project("stock")
    materialize_embeddings(reference, 1, progress=False)
    assert project_snapshot(store.config.project, REDIS) == project_snapshot(reference.config.project, REDIS)


@pytest.mark.parametrize("problem", ["dimension", "nan", "inf", "ints", "null"])
def test_bad_vectors_are_refused_before_anything_is_written(repo, tmp_path, problem):
    repo, spec, open_project = repo
    store = open_project("stock")
    n = 300
    ids = np.arange(1, n + 1)
    m = unit_vectors(n, 32)
    ts = [pd.Timestamp("2026-01-05", tz="UTC")] * n
    table = embedding_table(ids, m, ts, 1).to_pandas()
    bad = [250, 299]  # in the last batch: validation must run before the first batch is written
    for i in bad:
        row = table.index[table["item_id"] == i][0]
        vec = np.asarray(table.at[row, "embedding"], np.float32)
        table.at[row, "embedding"] = {"dimension": vec[:31], "nan": np.where(np.arange(32) == 3, np.nan, vec),
                                      "inf": np.where(np.arange(32) == 0, np.inf, vec), "ints": vec,
                                      "null": None}[problem]
    if problem == "ints":
        table["embedding"] = [np.round(np.asarray(v) * 100).astype(np.int64) for v in table["embedding"]]
        bad = list(ids)
    path = repo / DATA_DIR / f"{VIEW}.parquet"
    original = path.read_bytes()
    try:
        import pyarrow as pa

        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)
        with pytest.raises(EmbeddingValidationError) as err:
            materialize_embeddings(store, 1, batch_size=100, progress=False)
    finally:
        path.write_bytes(original)
    assert all(str(i) in str(err.value) for i in bad[:2]) and set(bad) <= set(err.value.item_ids)
    assert project_snapshot(store.config.project, REDIS) == {}


def test_redis_unreachable_is_named_and_nothing_is_written(repo):
    repo, spec, _ = repo
    config = repo / "feature_store.dead.yaml"
    config.write_text(stock_yaml("mf_dead_" + unique_project(), "registry_dead.db").replace(REDIS, "127.0.0.1:1"))
    store = apply_repo(repo, config)
    with pytest.raises(OnlineStoreUnavailableError, match=r"127\.0\.0\.1:1"):
        materialize_embeddings(store, 1, progress=False)
    assert store.get_feature_view(VIEW).materialization_intervals == []


def test_plugin_store_and_engine_match_stock_for_every_view(repo):
    repo, spec, open_project = repo
    now = pd.Timestamp.now(tz="UTC")
    stock, plugin = open_project("stock"), open_project("plugin")
    stock.materialize(start_date=START, end_date=now)
    plugin.materialize(start_date=START, end_date=now)  # item/user/sequence via the store, embeddings via the engine
    a, b = project_snapshot(stock.config.project, REDIS), project_snapshot(plugin.config.project, REDIS)
    assert len(a) > 60 + N_EXTRA and a == b
    # The one key the snapshots leave out: the plugin's materialization marker (stock writes none).
    assert set(MarkerStore(plugin.config).read()) == {fv.name for fv in plugin.list_feature_views()}
    assert MarkerStore(stock.config).read() == {}
    refs = ["item_profile:brand", "item_profile:price", f"{VIEW}:{EMBEDDING_FIELD}"]
    rows = [{"item_id": i} for i in (1, 5, 60, 61, 10**9)]
    assert plugin.get_online_features(features=refs, entity_rows=rows).to_dict() == \
        stock.get_online_features(features=refs, entity_rows=rows).to_dict()


def test_plugin_store_refuses_bad_pushes_and_writes(repo):
    repo, spec, open_project = repo
    plugin = open_project("plugin")
    ts = pd.Timestamp("2026-02-01", tz="UTC")
    good = unit_vectors(2, 32)
    df = pd.DataFrame({"item_id": [7, 8], "event_timestamp": [ts, ts],
                       "embedding": [good[0].tolist(), good[1][:16].tolist()]})
    with pytest.raises(EmbeddingValidationError, match=r"\b8\b"):
        plugin.write_to_online_store(VIEW, df)
    df["embedding"] = [good[0].tolist(), [float("nan")] * 32]
    with pytest.raises(EmbeddingValidationError, match=r"\b8\b"):
        plugin.write_to_online_store(VIEW, df)
    assert project_snapshot(plugin.config.project, REDIS) == {}
    df["embedding"] = [good[0].tolist(), good[1].tolist()]
    plugin.write_to_online_store(VIEW, df)
    got = plugin.get_online_features(features=[f"{VIEW}:{EMBEDDING_FIELD}"],
                                     entity_rows=[{"item_id": 7}, {"item_id": 8}]).to_dict()[EMBEDDING_FIELD]
    assert np.array_equal(np.asarray(got, np.float32), good)


def test_fast_write_into_sqlite_reads_back(repo):
    repo, spec, _ = repo
    store = apply_repo(repo)  # the repo's own feature_store.yaml: SQLite
    result = materialize_embeddings(store, 1, batch_size=200, progress=False)
    assert result.items_written == 60 + N_EXTRA
    src = source_vectors(repo)
    got = store.get_online_features(features=[f"{VIEW}:{EMBEDDING_FIELD}"],
                                    entity_rows=[{"item_id": i} for i in (2, 61, 10**9)]).to_dict()[EMBEDDING_FIELD]
    assert np.array_equal(np.asarray(got[0], np.float32), src[2]) and np.array_equal(np.asarray(got[1], np.float32), src[61])
    assert got[2] is None
