"""The scorer's onnxruntime backends on a real Feast repo over the real Redis with a DIN+MOON trained
from it: the same scores as torch on real requests (fp32 <= 1e-5; int8 close, but not within
1e-3), check-consistency for every backend (it catches int8's drift), the HTTP service on the onnx backend, and the named errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")

from fastapi.testclient import TestClient  # noqa: E402

from moon_features.cli import main as moon_cli  # noqa: E402
from moon_features.consistency import check_consistency  # noqa: E402
from moon_features.serving.app import create_app  # noqa: E402
from moon_features.serving.errors import SettingsError  # noqa: E402
from fixtures.serving_setup import build_serving_setup, users_with_history  # noqa: E402
from moon_features.serving.scorer import BACKEND_TOLERANCE, CTRScorer, ModelBackendError  # noqa: E402
from moon_features.serving.settings import ServingSettings  # noqa: E402
from fixtures.store_repo import delete_project_keys  # noqa: E402
from moon_features.store.push import append_positive_event  # noqa: E402
from moon_features.store.repo import open_store  # noqa: E402

REDIS = "127.0.0.1:6379"
UNKNOWN = 10**9


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    s = build_serving_setup(tmp_path_factory.mktemp("serving_onnx"), online="redis", redis_connection=REDIS,
                            n_items=200, dim=32, max_len=20)
    store = open_store(s.repo)
    scorers = {b: CTRScorer(store, s.model_dir, backend=b) for b in ("torch", "onnx", "onnx-int8")}
    yield s, store, scorers
    for scorer in scorers.values():
        scorer.close()
    delete_project_keys(s.project, REDIS)


def requests_of(s) -> list[tuple[int, np.ndarray]]:
    """Users with histories of several lengths, an unknown user; candidates with an unknown item."""
    rng = np.random.default_rng(0)
    users = [int(u) for u in users_with_history(s.repo, 1)[:6]] + [UNKNOWN]
    out = []
    for k, user in enumerate(users):
        items = rng.choice(np.arange(1, 201), 150 if k % 2 else 7, replace=False)
        out.append((user, np.r_[items, UNKNOWN]))
    return out


def test_onnx_backends_score_real_requests_as_torch(setup):
    s, store, scorers = setup
    reqs = requests_of(s)
    # one user's history changed online after materialization (the /events path)
    append_positive_event(store, s.spec, reqs[0][0], 5, pd.Timestamp.now(tz="UTC"))
    worst = {"onnx": 0.0, "onnx-int8": 0.0}
    lengths = set()
    for user, items in reqs:
        want = scorers["torch"].score_detailed(user, items)
        lengths.add(want.history_length)
        for backend in worst:
            got = scorers[backend].score_detailed(user, items)
            assert got.scores.dtype == np.float32 and got.scores.shape == want.scores.shape
            assert (got.item_found == want.item_found).all() and got.history_length == want.history_length
            worst[backend] = max(worst[backend], float(np.abs(got.scores - want.scores).max()))
        assert want.scores.std() > 1e-4  # a real model's scores vary: agreement is not trivial
    assert 0 in lengths and len(lengths) >= 3  # the unknown user (empty history) and several lengths
    assert worst["onnx"] <= 1e-5, worst
    # int8 (dynamic quantization of every MatMul / Gemm) is an approximation: close, not equal
    # (it missed the 1e-3 bound while dense features entered raw; docs/benchmarks.md).
    assert 0 < worst["onnx-int8"] < 0.2, worst


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_check_consistency_passes_for_the_exact_backends(setup, backend):
    s, store, _ = setup
    report = check_consistency(store, s.model_dir, n_rows=60, seed=3, backend=backend)
    assert report.tolerance == BACKEND_TOLERANCE[backend]
    assert report.ok, report.line()


def test_check_consistency_catches_the_int8_drift(setup):
    """int8 scores are close, not equal: held to the exact backends' 1e-5 the check fails, and names
    no differing feature (the inputs agree; only the model's arithmetic differs)."""
    s, store, _ = setup
    loose = check_consistency(store, s.model_dir, n_rows=60, seed=3, backend="onnx-int8")
    assert loose.tolerance == 1e-3 and loose.max_abs_diff > 1e-5
    tight = check_consistency(store, s.model_dir, n_rows=60, seed=3, backend="onnx-int8", tolerance=1e-5)
    assert not tight.ok and tight.differing_features == {}


def test_check_consistency_cli_takes_the_backend(setup, capsys):
    s, _, _ = setup
    assert moon_cli(["check-consistency", "--repo", str(s.repo), "--model-dir", str(s.model_dir), "--rows", "30",
                     "--backend", "onnx"]) in (0, None)
    assert "consistent: 30 rows" in capsys.readouterr().out


def test_http_service_on_the_onnx_backend(setup):
    s, _, scorers = setup
    user, items = requests_of(s)[1]
    settings = ServingSettings(repo=str(s.repo), model_dir=str(s.model_dir), backend="onnx")
    with TestClient(create_app(settings)) as client:
        r = client.post("/score", json={"user_id": user, "candidate_item_ids": items.tolist()})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["unknown_item_ids"] == [UNKNOWN] and body["item_found"][-1] is False
    assert np.abs(np.array(body["scores"]) - scorers["torch"].score(user, items)).max() <= 1e-5


def test_unknown_backends_are_named_errors(setup):
    s, store, _ = setup
    with pytest.raises(ModelBackendError, match="onnx-int8"):
        CTRScorer(store, s.model_dir, backend="tensorrt")
    with pytest.raises(SettingsError, match="backend"):
        ServingSettings(backend="tensorrt")
