"""Stock write, fast read: OnlineReader over the real Redis equals stock get_online_features, for
every feature type the spec uses (Int64 codes, Float32 dense, Array(Int64) sequence, Array(Float32)
embedding); the same API over SQLite gives the same answers; unknown ids and a dead Redis."""
import numpy as np
import pandas as pd
import pytest

from moon_features.spec import EMBEDDING_FIELD, ITEM_PROFILE_VIEW, SEQUENCE_VIEW, USER_PROFILE_VIEW
from moon_features.store.errors import OnlineStoreUnavailableError
from fixtures.store_repo import build_repo, delete_project_keys
from moon_features.store.online_reader import OnlineReader
from moon_features.store.push import append_positive_event
from moon_features.store.repo import apply_repo, init_repo, open_store, plugin_redis_config

REDIS = "127.0.0.1:6379"
START = pd.Timestamp("1970-01-02", tz="UTC")
UNKNOWN = [10**9, -5]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """One repo materialized by stock Feast into Redis, and the same repo into SQLite."""
    tmp = tmp_path_factory.mktemp("reader")
    # Embeddings also for ids 121..420: multi-byte varints and keys in the history script.
    repo, spec = build_repo(tmp, online="redis", redis_connection=REDIS, n_items=120, dim=64, extra_embedding_items=300)
    redis_store = apply_repo(repo)
    now = pd.Timestamp.now(tz="UTC")
    redis_store.materialize(start_date=START, end_date=now)
    init_repo(repo, project=redis_store.config.project, online="sqlite")  # its own registry file
    sqlite_store = apply_repo(repo)
    sqlite_store.materialize(start_date=START, end_date=now)
    yield spec, redis_store, sqlite_store
    delete_project_keys(redis_store.config.project, REDIS)


def stock_items(store, reader, ids):
    refs = [f"{v}:{f.name}" for v in (ITEM_PROFILE_VIEW, "item_moon_embedding_v1") for f in reader._view(v).features]
    return store.get_online_features(features=refs, entity_rows=[{"item_id": int(i)} for i in ids]).to_dict()


def test_fast_reader_equals_stock_for_items(stores):
    spec, store, _ = stores
    reader = OnlineReader(store, spec)
    assert reader.backend == "redis"
    ids = np.array([1, 5, 77, 120, *UNKNOWN, 5], dtype=np.int64)
    batch = reader.items(ids)
    stock = stock_items(store, reader, ids)
    for i, v in enumerate(stock[EMBEDDING_FIELD]):
        assert batch.embedding_found[i] == (v is not None)
        want = np.zeros(64, np.float32) if v is None else np.asarray(v, np.float32)
        assert batch.embeddings.dtype == np.float32 and np.array_equal(batch.embeddings[i], want)
    for name, col in batch.profiles.items():
        want = [0 if v is None else v for v in stock[name]]
        assert np.array_equal(col, np.asarray(want, dtype=col.dtype)), name
    assert batch.profiles["price"].dtype == np.float32 and batch.profiles["brand"].dtype == np.int64
    assert batch.profile_found.tolist() == [True] * 4 + [False, False, True]
    emb, found = reader.item_embeddings(ids)
    assert np.array_equal(emb, batch.embeddings) and np.array_equal(found, batch.embedding_found)


def test_fast_reader_equals_stock_for_users(stores):
    spec, store, _ = stores
    reader = OnlineReader(store, spec)
    refs = [f"{v}:{f.name}" for v in (USER_PROFILE_VIEW, SEQUENCE_VIEW) for f in reader._view(v).features]
    users = [1, 2, 7, 10**9]
    stock = store.get_online_features(features=refs, entity_rows=[{"user_id": u} for u in users]).to_dict()
    for row, u in enumerate(users):
        got = reader.user_features(u)
        assert got.found == got.sequence_found == (stock["hist_len"][row] is not None)
        assert got.hist_item_ids.dtype == np.int64
        assert got.hist_item_ids.tolist() == (stock["hist_item_ids"][row] or [])
        assert got.hist_len == (stock["hist_len"][row] or 0) == len(got.hist_item_ids)
        assert set(got.profile) == {f.name for f in spec.user_categorical} | set(spec.user_dense)
        for f in spec.user_categorical:
            assert got.profile[f.name] == (stock[f.name][row] or 0)
    assert reader.user_features(10**9).found is False


def test_lookup_redis_equals_sqlite(stores):
    spec, redis_store, sqlite_store = stores
    fast, slow = OnlineReader(redis_store, spec), OnlineReader(sqlite_store, spec)
    assert slow.backend == "feast"
    user = int(redis_store.get_online_features(features=["user_behavior_sequence:hist_len"],
                                               entity_rows=[{"user_id": 3}]).to_dict()["user_id"][0])
    cand = np.array([3, 9, 50, *UNKNOWN], dtype=np.int64)
    a, b = fast.lookup(user, cand), slow.lookup(user, cand)
    assert a.round_trips == 1 and len(a.user.hist_item_ids) > 0  # history read by the Lua script
    assert np.array_equal(a.user.hist_item_ids, b.user.hist_item_ids)
    for x, y in ((a.candidates, b.candidates), (a.history, b.history)):
        assert np.array_equal(x.item_ids, y.item_ids)
        assert np.array_equal(x.embeddings, y.embeddings) and np.array_equal(x.embedding_found, y.embedding_found)
        assert np.array_equal(x.profile_found, y.profile_found)
        for name in x.profiles:
            assert np.array_equal(x.profiles[name], y.profiles[name]), name
    assert a.candidates.embedding_found.tolist() == [True, True, True, False, False]
    c, d = fast.lookup(user, cand, profiles=False, history=False), slow.lookup(user, cand, profiles=False, history=False)
    assert c.round_trips == 1 and c.candidates.profiles == {} and len(c.history.item_ids) == 0
    assert np.array_equal(c.candidates.embeddings, a.candidates.embeddings)
    assert np.array_equal(c.candidates.embeddings, d.candidates.embeddings)
    assert np.array_equal(c.user.hist_item_ids, d.user.hist_item_ids)
    assert np.array_equal(a.history.item_ids, a.user.hist_item_ids) and a.history.embedding_found.all()


def test_lookup_falls_back_for_ids_lua_cannot_represent(stores):
    spec, store, _ = stores
    reader = OnlineReader(store, spec)
    user = 10**8 + 7  # a new user whose history holds ids beyond 2^53 and below 0, plus known ones
    when = pd.Timestamp("2026-03-01", tz="UTC")
    for k, item in enumerate([5, 2**60, -3, 5, 9]):
        append_positive_event(store, spec, user, item, when + pd.Timedelta(seconds=k))
    lk = reader.lookup(user, [1, 2])
    assert lk.round_trips == 2
    assert lk.history.item_ids.tolist() == [5, 2**60, -3, 5, 9]
    assert lk.history.embedding_found.tolist() == [True, False, False, True, True]
    emb, _ = reader.item_embeddings([5, 9])
    assert np.array_equal(lk.history.embeddings[[0, 4]], emb) and not lk.history.embeddings[1:3].any()
    user2 = user + 1  # the one-trip script path with repeats keeps order and duplicates
    hist = [9, 300, 9, 419, 256, 128, 10**6]
    for k, item in enumerate(hist):
        append_positive_event(store, spec, user2, item, when + pd.Timedelta(seconds=k))
    lk = reader.lookup(user2, [])
    assert lk.round_trips == 1 and lk.history.item_ids.tolist() == hist
    assert lk.history.embedding_found.tolist() == [True] * 6 + [False]
    assert np.array_equal(lk.history.embeddings, reader.item_embeddings(hist)[0])


def test_lookup_for_unknown_user_and_no_candidates(stores):
    spec, store, sqlite_store = stores
    for reader in (OnlineReader(store, spec), OnlineReader(sqlite_store, spec)):
        lk = reader.lookup(10**9, [])
        assert lk.user.found is False and lk.user.hist_len == 0
        assert lk.candidates.embeddings.shape == (0, 64) and lk.history.embeddings.shape == (0, 64)
        emb, found = reader.item_embeddings(UNKNOWN)
        assert emb.shape == (2, 64) and not emb.any() and not found.any()


def test_redis_unreachable_names_the_address(stores):
    spec, store, _ = stores
    repo = store.repo_path
    dead = repo / "feature_store.dead.yaml"  # same registry as the live Redis store, dead address
    dead.write_text(plugin_redis_config(store.config.project, "127.0.0.1:1"))
    reader = OnlineReader(open_store(repo, dead), spec)
    for call in (lambda: reader.lookup(3, [1, 2]), lambda: reader.item_embeddings([1]), lambda: reader.user_features(3)):
        with pytest.raises(OnlineStoreUnavailableError, match=r"127\.0\.0\.1:1") as err:
            call()
        assert err.value.address == "127.0.0.1:1"
