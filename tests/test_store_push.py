"""Real-time sequences through Feast push: order, the last L, timestamps, late events, new users;
on Redis (read back by the fast reader) and on SQLite."""
import numpy as np
import pandas as pd
import pytest

from fixtures.store_repo import build_repo, delete_project_keys
from moon_features.store.online_reader import OnlineReader
from moon_features.store.push import append_positive_event, current_sequence
from moon_features.store.repo import apply_repo, init_repo

REDIS = "127.0.0.1:6379"
MAX_LEN = 8


@pytest.fixture(scope="module", params=["redis", "sqlite"])
def store(request, tmp_path_factory):
    repo, spec = build_repo(tmp_path_factory.mktemp(f"push_{request.param}"), online=request.param,
                            redis_connection=REDIS, n_items=60, dim=16, max_len=MAX_LEN)
    store = apply_repo(repo)
    store.materialize(start_date=pd.Timestamp("1970-01-02", tz="UTC"), end_date=pd.Timestamp.now(tz="UTC"))
    yield store, spec
    if request.param == "redis":
        delete_project_keys(store.config.project, REDIS)


def test_append_keeps_last_l_in_order_with_timestamps(store):
    store, spec = store
    reader = OnlineReader(store, spec)
    user = 3
    before, stored_at = current_sequence(store, user)
    assert len(before) == reader.user_features(user).hist_len > 0 and stored_at is not None
    t0 = pd.Timestamp.now(tz="UTC").floor("s")
    new = [1001, 1002, 1003]
    for k, item in enumerate(new):
        row = append_positive_event(store, spec, user, item, t0 + pd.Timedelta(seconds=k))
        assert row["event_timestamp"] == (t0 + pd.Timedelta(seconds=k)).to_pydatetime()
    want = (before + new)[-MAX_LEN:]
    got = reader.user_features(user)
    assert got.hist_item_ids.tolist() == want and got.hist_len == len(want) == MAX_LEN
    after, stamped = current_sequence(store, user)
    assert after == want and pd.Timestamp(stamped) == t0 + pd.Timedelta(seconds=2)


def test_late_event_is_appended_not_dropped(store):
    store, spec = store
    user = 4
    t = pd.Timestamp.now(tz="UTC").floor("s") + pd.Timedelta(hours=1)
    append_positive_event(store, spec, user, 2001, t)
    row = append_positive_event(store, spec, user, 2002, t - pd.Timedelta(days=1))  # arrives late
    assert row["event_timestamp"] == (t + pd.Timedelta(microseconds=1)).to_pydatetime()
    assert current_sequence(store, user)[0][-2:] == [2001, 2002]
    append_positive_event(store, spec, user, 2003, t + pd.Timedelta(microseconds=1))  # same instant as stored
    assert current_sequence(store, user)[0][-3:] == [2001, 2002, 2003]


def test_new_user_and_naive_timestamp(store):
    store, spec = store
    user = 10**7
    assert current_sequence(store, user) == ([], None)
    append_positive_event(store, spec, user, 5, pd.Timestamp("2026-03-01", tz="UTC"))
    got = OnlineReader(store, spec).user_features(user)
    assert got.hist_item_ids.tolist() == [5] and got.hist_len == 1 and got.sequence_found
    with pytest.raises(ValueError, match="time zone"):
        append_positive_event(store, spec, user, 6, pd.Timestamp("2026-03-02"))
