"""The HTTP service over a private, real Redis (a redis-server subprocess this module starts and
stops) with a real tiny DIN+MOON: /score, /events, /health, /metrics, validation, 413, and 503
while Redis is down followed by recovery without restarting the app."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from moon_features.serving.app import create_app
from moon_features.serving.live import PrivateRedis
from fixtures.serving_setup import build_serving_setup, users_with_history
from moon_features.serving.settings import ServingSettings
from moon_features.store.repo import materialize_all, open_store

UNKNOWN = 10**9
MAX_CANDIDATES = 50


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    redis = PrivateRedis()
    redis.start()
    try:
        s = build_serving_setup(tmp_path_factory.mktemp("serving_http"), online="redis",
                                redis_connection=f"127.0.0.1:{redis.port}")
        settings = ServingSettings(repo=str(s.repo), model_dir=str(s.model_dir), max_candidates=MAX_CANDIDATES)
        app = create_app(settings)
        with TestClient(app) as client:
            yield s, client, redis
    finally:
        redis.stop()


def user_with_history(s) -> int:
    return int(users_with_history(s.repo, 3)[0])


def test_score_returns_scores_in_request_order_with_the_model_version(service):
    s, client, _ = service
    user = user_with_history(s)
    ids = [8, 3, 41, UNKNOWN, 19]
    r = client.post("/score", json={"user_id": user, "candidate_item_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    scorer = client.app.state.scorer
    np.testing.assert_allclose(body["scores"], scorer.score(user, ids), atol=1e-7)
    assert body["model_version"] == scorer.model_version and body["model_version"].startswith("din-")
    assert body["embedding_version"] == 1 and body["feature_service"] == s.spec.feature_service_name
    assert body["embedding_versions"] == [1]  # every view the model reads (several: docs/concepts.md)
    assert body["user_found"] is True and body["history_length"] > 0
    assert body["item_found"] == [True, True, True, False, True] and body["unknown_item_ids"] == [UNKNOWN]
    reversed_ = client.post("/score", json={"user_id": user, "candidate_item_ids": ids[::-1]}).json()["scores"]
    np.testing.assert_allclose(body["scores"], reversed_[::-1], atol=1e-6)


def test_unknown_user_is_scored_with_an_empty_history_and_flagged(service):
    _, client, _ = service
    r = client.post("/score", json={"user_id": UNKNOWN, "candidate_item_ids": [1, 2, 3]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_found"] is False and body["history_length"] == 0 and len(body["scores"]) == 3


@pytest.mark.parametrize("payload", [
    {"candidate_item_ids": [1, 2]},                                  # no user
    {"user_id": "seven", "candidate_item_ids": [1]},                 # not an integer
    {"user_id": 1, "candidate_item_ids": []},                        # nothing to score
    {"user_id": 1, "candidate_item_ids": [1, "2"]},                  # strings are not ids
    {"user_id": 1, "candidate_item_ids": [2**64]},                   # beyond int64
    {"user_id": 1, "candidate_item_ids": [1], "debug": True},        # unknown field
    {"user_id": 1, "candidate_item_ids": [1], "context": {"hour": 3}},  # not a context feature of the model
])
def test_malformed_score_payload_is_422(service, payload):
    _, client, _ = service
    r = client.post("/score", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_too_many_candidates_is_413(service):
    _, client, _ = service
    r = client.post("/score", json={"user_id": 1, "candidate_item_ids": list(range(1, MAX_CANDIDATES + 2))})
    assert r.status_code == 413 and f"limit of {MAX_CANDIDATES}" in r.json()["detail"]
    assert client.post("/score", json={"user_id": 1, "candidate_item_ids": list(range(1, MAX_CANDIDATES + 1))}
                       ).status_code == 200


def test_event_appends_to_the_sequence_and_the_next_score_sees_it(service):
    s, client, _ = service
    user = user_with_history(s)
    before = client.post("/score", json={"user_id": user, "candidate_item_ids": [8, 9]}).json()
    lookup = client.app.state.scorer.lookup(user, [])
    r = client.post("/events", json={"user_id": user, "item_id": 77, "event_type": "click"})
    assert r.status_code == 200, r.text
    assert r.json()["hist_item_ids"][-1] == 77
    assert r.json()["hist_item_ids"][:-1] == lookup.user.hist_item_ids.tolist()[-(s.spec.max_len - 1):]
    after = client.post("/score", json={"user_id": user, "candidate_item_ids": [8, 9]}).json()
    assert after["history_length"] == min(before["history_length"] + 1, s.spec.max_len)
    assert after["scores"] != before["scores"]

    new_user = 10**6
    r = client.post("/events", json={"user_id": new_user, "item_id": 5, "event_type": "like",
                                     "event_timestamp": "2026-03-01T12:00:00Z"})
    assert r.status_code == 200 and r.json()["hist_item_ids"] == [5]
    assert client.post("/score", json={"user_id": new_user, "candidate_item_ids": [1]}).json()["history_length"] == 1
    for bad in ({"user_id": 1, "item_id": 2, "event_type": "view"},
                {"user_id": 1, "item_id": 2, "event_type": "click", "event_timestamp": "2026-03-01T12:00:00"}):
        assert client.post("/events", json=bad).status_code == 422


def test_health_metrics_and_openapi(service):
    _, client, _ = service
    assert client.get("/health").json()["status"] == "ok"
    client.post("/score", json={"user_id": UNKNOWN, "candidate_item_ids": [UNKNOWN, 1]})
    text = client.get("/metrics").text
    assert 'moon_serving_requests_total{endpoint="/score",status="200"}' in text
    assert 'moon_serving_lookup_misses_total{kind="user"}' in text
    assert 'moon_serving_request_latency_seconds_bucket{endpoint="/score",le="0.01"}' in text
    assert 'moon_serving_stage_latency_seconds_count{stage="lookup"}' in text
    misses = [l for l in text.splitlines() if l.startswith('moon_serving_lookup_misses_total{kind="item"}')]
    assert float(misses[0].split()[-1]) >= 1
    schema = client.get("/openapi.json").json()
    assert {"/score", "/events", "/health", "/metrics"} <= set(schema["paths"])
    assert "413" in schema["paths"]["/score"]["post"]["responses"]


def test_store_down_is_503_and_the_service_recovers_without_restart(service, caplog):
    """Runs last in this module: it kills the module's Redis."""
    s, client, redis = service
    user = user_with_history(s)
    redis.stop()
    r = client.post("/score", json={"user_id": user, "candidate_item_ids": [1, 2]})
    assert r.status_code == 503 and r.headers["retry-after"]
    # The answer does not name the store (host, port, db); the log does.
    assert str(redis.port) not in r.text and "127.0.0.1" not in r.text and "address" not in r.json()
    assert any(f"127.0.0.1:{redis.port}" in rec.getMessage() for rec in caplog.records)
    assert client.get("/health").status_code == 503
    assert client.post("/events", json={"user_id": user, "item_id": 3, "event_type": "click"}).status_code == 503
    assert 'moon_serving_requests_total{endpoint="/score",status="503"}' in client.get("/metrics").text

    redis.start()  # empty: nothing persisted; fill it again as a deployment would
    materialize_all(open_store(s.repo))
    r = client.post("/score", json={"user_id": user, "candidate_item_ids": [1, 2]})
    assert r.status_code == 200, r.text
    assert r.json()["user_found"] is True
    assert client.get("/health").status_code == 200


def test_settings_merge_file_environment_and_arguments(tmp_path):
    from moon_features.serving.errors import SettingsError

    cfg = tmp_path / "serving.yaml"
    cfg.write_text("repo: /srv/repo\nmodel_dir: /srv/model\nport: 9000\nmax_candidates: 300\n")
    env = {"MOON_SERVING_PORT": "9100", "MOON_SERVING_TORCH_THREADS": "2"}
    s = ServingSettings.load(cfg, env=env, max_candidates=None, host="0.0.0.0")
    assert (s.repo, s.port, s.max_candidates, s.torch_threads, s.host) == ("/srv/repo", 9100, 300, 2, "0.0.0.0")
    assert ServingSettings.load(env={"MOON_SERVING_CONFIG": str(cfg)}).port == 9000
    assert ServingSettings.load(env={**s.as_env()}) == s  # how worker processes receive them
    with pytest.raises(SettingsError, match="unknown serving settings"):
        ServingSettings.load(env={}, max_candidate=3)
    with pytest.raises(SettingsError, match="must be an integer"):
        ServingSettings.load(env={"MOON_SERVING_PORT": "eighty"})
    with pytest.raises(SettingsError, match="--repo"):
        ServingSettings.load(env={}).require_paths()


def test_cli_registers_serve_and_check_consistency(tmp_path):
    import argparse

    from moon_features.serving.cli import add_serving_commands, main

    parser = argparse.ArgumentParser()
    add_serving_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", "--repo", "r", "--model-dir", "m", "--config", "fs.yaml", "--port", "8123"])
    assert (args.repo, args.model_dir, args.config, args.port, args.host) == ("r", "m", "fs.yaml", 8123, None)
    from moon_features.cli import build_parser  # check-consistency spans training and serving: the main CLI

    args = build_parser().parse_args(["check-consistency", "--repo", "r", "--model-dir", "m", "--rows", "10"])
    assert args.rows == 10 and args.tolerance == 1e-5
    # A missing model folder is a named error and exit code 2, not a traceback.
    assert main(["serve", "--repo", str(tmp_path), "--model-dir", str(tmp_path / "nope")]) == 2
