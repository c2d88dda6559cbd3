"""The online path under bad input, concurrency and faults (issue #16), over a real service: a
private redis-server, a real Feast repo with a tiny DIN+MOON, uvicorn on loopback, and the same
repo on SQLite. Concurrent events, event validation, wiped store and its refill, hung Redis,
access tokens and logs. The bad-input suite is in test_serving_bad_input.py."""
from __future__ import annotations

import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from bad_http_cases import CASES
from moon_features.serving.app import create_app
from fixtures.serving_setup import build_serving_setup, users_with_history
from moon_features.serving.live import HungRedis, LiveServer, PrivateRedis
from moon_features.serving.settings import ServingSettings
from moon_features.store.definitions import repo_objects
from moon_features.store.markers import MarkerStore
from moon_features.store.push import current_sequence
from moon_features.store.repo import materialize_all, open_store, sqlite_config

TOKEN = "t0ken-for-tests-0123456789"
MAX_LEN = 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    redis = PrivateRedis().start()
    try:
        s = build_serving_setup(tmp_path_factory.mktemp("hardening"), online="redis", max_len=MAX_LEN,
                                redis_connection=f"127.0.0.1:{redis.port}")
        (s.repo / "sqlite.yaml").write_text(sqlite_config(s.project))
        sqlite = open_store(s.repo, s.repo / "sqlite.yaml")
        sqlite.apply(list(repo_objects(s.repo).values()))
        materialize_all(sqlite)
        yield s, redis
    finally:
        redis.stop()


def make_app(s, backend: str = "redis", **overrides):
    config = str(s.repo / "sqlite.yaml") if backend == "sqlite" else None
    return create_app(ServingSettings(repo=str(s.repo), model_dir=str(s.model_dir), feature_store_yaml=config,
                                      max_candidates=50, **overrides))


@pytest.fixture(scope="module")
def apps(setup):
    s, _ = setup
    return {"redis": make_app(s, "redis"), "sqlite": make_app(s, "sqlite")}


# --- 1. atomic appends ----------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_fifty_concurrent_events_from_eight_clients_are_all_stored(apps, backend):
    app = apps[backend]
    user = 770_001 if backend == "redis" else 770_002
    items = list(range(1, 51))
    t0 = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(minutes=1)

    def client_work(k: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in items[k::8]:
                when = (t0 + pd.Timedelta(milliseconds=i)).isoformat()
                r = c.post("/events", json={"user_id": user, "item_id": i, "event_type": "click",
                                            "event_timestamp": when})
                codes.append(r.status_code)
        return codes

    with LiveServer(app) as url, ThreadPoolExecutor(8) as pool:
        codes = [c for part in pool.map(client_work, range(8)) for c in part]
    assert codes == [200] * 50
    stored, stamped = current_sequence(app.state.scorer.store, user)  # read back by Feast itself
    assert sorted(stored) == items and len(stored) == 50
    assert app.state.scorer.reader.user_features(user).hist_len == 50
    assert pd.Timestamp(stamped) >= t0


def test_the_script_writes_exactly_what_feast_push_writes(setup, apps):
    """Redis: the Lua append and a Feast push of the same row leave byte-identical fields."""
    from feast.data_source import PushMode

    from moon_features.spec import SEQUENCE_PUSH_SOURCE
    from moon_features.store import redis_codec as codec

    s, redis = setup
    store = apps["redis"].state.scorer.store
    when = pd.Timestamp("2026-03-01T12:00:00.123456Z")
    apps["redis"].state.events.appender.append(880_001, 7, when)
    store.push(SEQUENCE_PUSH_SOURCE, pd.DataFrame({
        "user_id": pd.Series([880_002], dtype="int64"), "event_timestamp": pd.Series([when]),
        "hist_item_ids": [[7]], "hist_len": pd.Series([1], dtype="int64")}), to=PushMode.ONLINE)
    transport = apps["redis"].state.health.markers._transport
    keys = codec.redis_keys("user_id", [880_001, 880_002], s.project)
    a, b = (transport.execute_commands([[b"HGETALL", k]])[0] for k in keys)
    assert a == b and len(a) == 3  # hist_item_ids, hist_len, _ts:<view>


# --- 2. event validation --------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
@pytest.mark.parametrize("event, reason", [
    ({"item_id": 0}, "positive"),
    ({"item_id": -5}, "positive"),
    ({"user_id": 0}, "positive"),
    ({"user_id": -1}, "positive"),
    ({"item_id": 10**9}, "catalogue"),
    ({"event_timestamp": "2099-01-01T00:00:00Z"}, "ahead"),
    ({"event_timestamp": "9999-12-31T23:59:59Z"}, "ahead"),
    ({"event_timestamp": "1970-01-01T00:00:00Z"}, "before"),
    ({"event_timestamp": 1767225600}, "ISO 8601"),
])
def test_bad_events_are_422_and_nothing_is_stored(apps, backend, event, reason):
    app = apps[backend]
    client = TestClient(app)
    user = 990_001
    before = current_sequence(app.state.scorer.store, user)
    r = client.post("/events", json={"user_id": user, "item_id": 3, "event_type": "click", **event})
    assert r.status_code == 422 and reason in r.text, r.text
    assert current_sequence(app.state.scorer.store, user) == before


def test_allowed_future_skew_is_configurable(setup):
    s, _ = setup
    soon = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=120)).isoformat()
    event = {"user_id": 990_002, "item_id": 3, "event_type": "like", "event_timestamp": soon}
    assert TestClient(make_app(s)).post("/events", json=event).status_code == 200
    strict = TestClient(make_app(s, events_max_future_s=10))
    assert strict.post("/events", json=event).status_code == 422


# --- 6. access ------------------------------------------------------------------------------
def test_bearer_token_guards_events_and_optionally_score(setup):
    s, _ = setup
    event = {"user_id": 990_003, "item_id": 4, "event_type": "click"}
    score = {"user_id": 1, "candidate_item_ids": [1, 2]}
    client = TestClient(make_app(s, auth_token=TOKEN))
    assert client.post("/events", json=event).status_code == 401
    r = client.post("/events", json=event, headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/events", json=event, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.post("/score", json=score).status_code == 200  # open unless auth_score
    assert client.get("/health").status_code == 200
    strict = TestClient(make_app(s, auth_token=TOKEN, auth_score=True))
    assert strict.post("/score", json=score).status_code == 401
    assert strict.post("/score", json=score, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    env = ServingSettings.load(env={"MOON_SERVING_AUTH_TOKEN": TOKEN, "MOON_SERVING_AUTH_SCORE": "true"})
    assert env.auth_token == TOKEN and env.auth_score is True


# --- 3. bodies, logs, containment -----------------------------------------------------------
def test_body_over_the_limit_is_413_before_it_is_read(apps):
    client = TestClient(apps["redis"])
    big = b'{"user_id": 1, "candidate_item_ids": [1], "pad": "' + b"x" * (2 << 20) + b'"}'
    r = client.post("/score", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and len(r.content) < 200

    def chunks():  # no Content-Length: counted as it streams
        yield b'{"user_id": 1, "pad": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    r = client.post("/events", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_a_422_does_not_echo_the_input_and_logs_hold_no_bodies(apps, caplog):
    client = TestClient(apps["redis"])
    secret = "s3cret-" * 100_000  # 700 kB, under the 1 MiB limit
    caplog.set_level(logging.DEBUG)
    r = client.post("/score", json={"user_id": 1, "candidate_item_ids": [1], "extra": secret})
    assert r.status_code == 422 and len(r.content) < 2000 and "s3cret" not in r.text
    r = client.post("/score", json={"user_id": 1, "candidate_item_ids": [1], secret: 1})  # the key is input too
    assert r.status_code == 422 and len(r.content) < 2000
    assert not any("s3cret" in rec.getMessage() for rec in caplog.records)


def test_unexpected_errors_are_500_without_traceback_or_body_in_the_log(setup, caplog, monkeypatch):
    s, _ = setup
    app = make_app(s)

    def broken(*args, **kwargs):
        raise RuntimeError("payload-9f3a leaked")

    monkeypatch.setattr(app.state.scorer, "score_detailed", broken)
    caplog.set_level(logging.DEBUG)
    r = TestClient(app, raise_server_exceptions=False).post("/score", json={"user_id": 1, "candidate_item_ids": [5]})
    assert r.status_code == 500 and "Traceback" not in r.text and "payload-9f3a" not in r.text
    logged = " ".join(rec.getMessage() for rec in caplog.records)
    assert "RuntimeError" in logged and "payload-9f3a" not in logged and "Traceback" not in logged


# --- 5. hung Redis, bounded concurrency -------------------------------------------------------
def test_hung_redis_gives_503_and_in_flight_is_bounded(setup, tmp_path):
    """A store that accepts connections and never answers: every endpoint answers 503 instead of
    hanging (the time is measured by bench/reliability.py); beyond max_in_flight -> 503 + Retry-After."""
    s, redis = setup
    hung = HungRedis()
    try:
        text = (s.repo / "feature_store.yaml").read_text().replace(f"127.0.0.1:{redis.port}", f"127.0.0.1:{hung.port}")
        (s.repo / "hung.yaml").write_text(text)
        app = create_app(ServingSettings(repo=str(s.repo), model_dir=str(s.model_dir), max_in_flight=1,
                                         feature_store_yaml=str(s.repo / "hung.yaml"), store_timeout_s=0.3,
                                         require_materialized=False))
        with LiveServer(app) as url, httpx.Client(base_url=url, timeout=20) as c:
            assert c.get("/health").status_code == 503
            with ThreadPoolExecutor(2) as pool:
                slow = pool.submit(c.post, "/score", json={"user_id": 1, "candidate_item_ids": [1]})
                time.sleep(0.1)
                busy = c.post("/events", json={"user_id": 1, "item_id": 2, "event_type": "click"})
                assert slow.result().status_code == 503
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "in_flight" not in busy.text
            r = c.post("/events", json={"user_id": 1, "item_id": 2, "event_type": "click"})
            assert r.status_code == 503 and str(hung.port) not in r.text
    finally:
        hung.close()


# --- 9. the bad-input suite (93 cases: tests/bad_http_cases.py) -------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_http_input_is_never_a_500_nor_echoed(apps, caplog, case):
    _, method, path, body = case
    app = apps["redis"]
    client = TestClient(app, raise_server_exceptions=False)
    caplog.set_level(logging.INFO)
    before = current_sequence(app.state.scorer.store, 5)
    r = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert r.status_code in (404, 405, 413, 422), (r.status_code, r.text[:300])
    echo = "P4D-" * 20  # a location may name a key the client sent, cut to 64 characters: never more
    assert len(r.content) < 4096 and "Traceback" not in r.text and echo not in r.text
    assert not any("P4D-P4D-" in rec.getMessage() or "Traceback" in rec.getMessage() for rec in caplog.records)
    assert current_sequence(app.state.scorer.store, 5) == before  # nothing was stored


# --- 4. wiped store (runs last: it flushes the module's Redis, then refills it) --------------
def test_wiped_store_is_503_and_one_command_refills_it(setup, apps, capsys):
    from moon_features.cli import main as moon_cli

    s, redis = setup
    client = TestClient(apps["redis"])
    user = int(users_with_history(s.repo, 3)[0])
    history = apps["redis"].state.scorer.reader.user_features(user).hist_item_ids.tolist()
    assert client.get("/health").status_code == 200
    redis.command("FLUSHALL")  # what a restart without persistence leaves
    r = client.get("/health")
    assert r.status_code == 503 and "moon-features materialize --repo" in r.json()["detail"]
    r = client.post("/events", json={"user_id": user, "item_id": 3, "event_type": "click"})
    assert r.status_code == 503  # an append into the empty store would replace the history with one item
    assert apps["redis"].state.scorer.reader.user_features(user).found is False
    # Incremental materialization alone would write nothing (the registry says it is done);
    # the command sees the missing markers and fills those views in full.
    assert moon_cli(["materialize", "--repo", str(s.repo)]) == 0
    assert "in full" in capsys.readouterr().out
    assert client.get("/health").status_code == 200
    assert apps["redis"].state.scorer.reader.user_features(user).hist_item_ids.tolist() == history
    assert set(MarkerStore(apps["redis"].state.scorer.store.config).read()) >= set(apps["redis"].state.health.views)
    time.sleep(1.1)  # past /score's cached health
    assert client.post("/score", json={"user_id": user, "candidate_item_ids": [1]}).json()["user_found"] is True


def test_shipped_redis_yaml_has_timeouts_and_the_service_sets_its_own(monkeypatch):
    from pathlib import Path

    from moon_features.serving.app import with_store_timeouts
    from moon_features.store.redis_connection import parse_connection_string

    repo = Path(__file__).resolve().parents[1] / "feature_repo"
    monkeypatch.setenv("MOON_REDIS_URL", "127.0.0.1:6379,db=3")
    store = open_store(repo, repo / "feature_store.redis.yaml")
    nodes, params = parse_connection_string(store.config.online_store.connection_string)
    assert nodes == [("127.0.0.1", 6379)] and params["db"] == 3
    assert 0 < params["socket_timeout"] <= 2 and 0 < params["socket_connect_timeout"] <= 1
    with_store_timeouts(store, 0.25)
    nodes, params = parse_connection_string(store.config.online_store.connection_string)
    assert (params["socket_timeout"], params["socket_connect_timeout"], params["db"]) == (0.25, 0.25, 3)


@pytest.mark.parametrize("name, text", [("s.yaml", "port: [unclosed\n"), ("s.json", "{port: 1"),
                                        ("s.yaml", "- a list\n"), ("s.yaml", "auth_token: short\n"),
                                        ("s.yaml", "auth_score: maybe\n"), ("s.yaml", "store_timeout_s: soon\n"),
                                        ("s.yaml", "events_min_time: yesterday\n"), ("s.yaml", "max_body_bytes: 10\n")])
def test_bad_settings_files_are_settings_errors(tmp_path, name, text):
    from moon_features.serving.errors import SettingsError

    (tmp_path / name).write_text(text)
    with pytest.raises(SettingsError):
        ServingSettings.load(tmp_path / name, env={})
