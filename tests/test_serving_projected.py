"""The projected item view on a real Feast repo over the real Redis with a DIN+MOON trained from it:
`moon-features export --projected-items` materializes and pins it, the scorer reads it and gives the
plain path's scores (<= 1e-5) on real requests, check-consistency passes through it, the HTTP
service uses it, and every pin mismatch is a named error at load."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fixtures.serving_setup import build_serving_setup, users_with_history
from fixtures.store_repo import delete_project_keys
from moon_features.cli import main as moon_cli
from moon_features.consistency import check_consistency
from moon_features.serving.app import create_app
from moon_features.serving.errors import ProjectedItemsMismatchError
from moon_features.serving.projected import PIN_FILE
from moon_features.serving.scorer import CTRScorer
from moon_features.serving.settings import ServingSettings
from moon_features.store.push import append_positive_event
from moon_features.store.repo import open_store

REDIS = "127.0.0.1:6379"
UNKNOWN = 10**9


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    s = build_serving_setup(tmp_path_factory.mktemp("serving_projected"), online="redis", redis_connection=REDIS,
                            n_items=200, dim=32, max_len=20)
    plain_dir = s.model_dir.parent / "model_plain"
    shutil.copytree(s.model_dir, plain_dir)  # the same weights, never pinned
    assert moon_cli(["export", "--projected-items", "--repo", str(s.repo), "--model-dir", str(s.model_dir)]) == 0
    store = open_store(s.repo)
    plain, projected = CTRScorer(store, plain_dir), CTRScorer(store, s.model_dir)
    projected.onnx = CTRScorer(store, s.model_dir, backend="onnx")  # the forward in onnxruntime
    yield s, store, plain, projected
    plain.close()
    projected.close()
    projected.onnx.close()
    delete_project_keys(s.project, REDIS)


def test_export_pins_a_materialized_versioned_view(setup):
    s, store, plain, projected = setup
    pin = json.loads((s.model_dir / PIN_FILE).read_text())
    assert pin["view"] == "item_projected_v1" and pin["items"] == 200
    assert "item_projected_v1" in create_app(ServingSettings(repo=str(s.repo), model_dir=str(s.model_dir))).state.health.views
    views = {fv.name: fv for fv in store.list_feature_views()}
    assert views[pin["view"]].tags["moon.projection_fingerprint"] == pin["fingerprint"]
    service = store.get_feature_service(pin["feature_service"])
    assert pin["view"] in [p.name for p in service.feature_view_projections]
    assert projected.projected is not None and plain.projected is None and projected.onnx.projected is not None
    assert projected.model_version == plain.model_version  # the pin is not part of the weights' id


def test_projected_scores_equal_the_plain_path(setup):
    s, store, plain, projected = setup
    rng = np.random.default_rng(0)
    users = [int(u) for u in users_with_history(s.repo, 1)[:5]] + [UNKNOWN]
    # a history changed online after materialization (the /events path): both paths read it
    append_positive_event(store, s.spec, users[0], 5, pd.Timestamp.now(tz="UTC"))
    worst, lengths = 0.0, set()
    for k, user in enumerate(users):
        items = np.r_[rng.choice(np.arange(1, 201), 150 if k % 2 else 7, replace=False), UNKNOWN, 0]
        want, got = plain.score_detailed(user, items), projected.score_detailed(user, items)
        worst = max(worst, float(np.abs(want.scores - got.scores).max()),
                    float(np.abs(want.scores - projected.onnx.score(user, items)).max()))
        assert (want.item_found == got.item_found).all() and want.user_found == got.user_found
        assert (want.history_length, want.history_missing) == (got.history_length, got.history_missing)
        assert want.scores.std() > 1e-4
        lengths.add(got.history_length)
    assert worst <= 1e-5 and len(lengths) >= 3
    assert len(projected.score(users[0], [])) == 0
    assert set(projected.score_detailed(users[0], [3]).timings) == {"lookup", "batch", "model"}


def test_check_consistency_passes_through_the_projected_view(setup):
    s, store, plain, projected = setup
    report = check_consistency(store, s.model_dir, n_rows=60, seed=1)
    assert report.ok, report.summary()


def test_http_service_scores_from_the_projected_view(setup):
    s, store, plain, projected = setup
    user = int(users_with_history(s.repo, 1)[0])
    with TestClient(create_app(ServingSettings(repo=str(s.repo), model_dir=str(s.model_dir)))) as client:
        r = client.post("/score", json={"user_id": user, "candidate_item_ids": [3, 9, UNKNOWN]})
    assert r.status_code == 200
    assert np.abs(np.array(r.json()["scores"]) - plain.score(user, [3, 9, UNKNOWN])).max() <= 1e-5
    assert r.json()["unknown_item_ids"] == [UNKNOWN]


def edited_pin(s, tmp_path, **changes):
    folder = tmp_path / "model"
    shutil.copytree(s.model_dir, folder)
    pin = json.loads((folder / PIN_FILE).read_text())
    (folder / PIN_FILE).write_text(json.dumps({**pin, **changes}))
    return folder


def test_pin_mismatches_are_named_errors(setup, tmp_path):
    s, store, plain, projected = setup
    with pytest.raises(ProjectedItemsMismatchError, match="no such view.*export --projected-items"):
        CTRScorer(store, edited_pin(s, tmp_path / "a", view="item_projected_v9"))
    with pytest.raises(ProjectedItemsMismatchError, match="not the ones"):
        CTRScorer(store, edited_pin(s, tmp_path / "b", fingerprint="0" * 16))
    with pytest.raises(ProjectedItemsMismatchError, match="feature service"):
        CTRScorer(store, edited_pin(s, tmp_path / "c", feature_service="nope"))
    with pytest.raises(ProjectedItemsMismatchError, match="pins a projected item view"):
        CTRScorer(store, plain.artifact, projected_items=True)
    assert CTRScorer(store, s.model_dir, projected_items=False).projected is None


def test_items_materialized_after_the_build_are_a_named_error(setup, tmp_path):
    s, store, plain, projected = setup
    pin = json.loads((s.model_dir / PIN_FILE).read_text())
    assert set(pin["sources"]) == {"item_profile", "item_moon_embedding_v1"} and all(pin["sources"].values())
    stale = {**pin["sources"], "item_profile": "2000-01-01T00:00:00+00:00"}  # as if built before the last materialize
    with pytest.raises(ProjectedItemsMismatchError, match="item_profile were materialized again"):
        CTRScorer(store, edited_pin(s, tmp_path / "d", sources=stale))
