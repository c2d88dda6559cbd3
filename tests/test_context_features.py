"""Context features end to end: a column of the interaction log (hour_of_day, device) declared at
`features build --context-columns`, trained from the entity rows, sent in /score's `context`.

The shop's context columns really shift the click rate (synthetic.HOUR_EFFECT, DEVICE_EFFECT),
so a DIN trained with them must rank the test rows better than one trained without; and the
model must score online as offline (check_consistency), context included.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ctr_models.artifact import from_pretrained
from ctr_models.trainer import TrainerConfig
from moon_features.cli import main
from moon_features.consistency import check_consistency, sample_rows
from moon_features.data.layout import load_dataset
from moon_features.data.synthetic import generate_shop
from moon_features.idmap import coded_dataset
from moon_features.serving.app import create_app
from moon_features.serving.errors import ContextError, ModelStoreMismatchError
from moon_features.serving.scorer import CTRScorer
from moon_features.serving.settings import ServingSettings
from moon_features.store.repo import load_spec, materialize_all, open_store
from moon_features.store.sources import entity_rows
from moon_features.training.retrieval import TrainingSetError, training_data
from moon_features.training.train import train_from_feast

CONTEXT = ("hour_of_day", "device")


@pytest.fixture(scope="module")
def context_shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("context_shop")
    generate_shop(root, n_items=200, impressions_per_user=60, seed=0, progress=False, context=True)
    return root


def _build(shop, repo, context: bool):
    args = ["features", "build", "--data", str(shop), "--repo", str(repo), "--max-len", "20"]
    assert main(args + (["--context-columns", ",".join(CONTEXT)] if context else [])) in (0, None)
    return load_spec(repo)


def _train(shop, repo, out):
    spec = load_spec(repo)
    rows = entity_rows(coded_dataset(load_dataset(shop))[0], spec)
    cfg = TrainerConfig(epochs=6, batch_size=256, lr=3e-3, progress=False, seed=0)
    return train_from_feast(repo, rows, out, model="din", use_moon=False, trainer_config=cfg)


@pytest.fixture(scope="module")
def trained(context_shop, tmp_path_factory):
    base = tmp_path_factory.mktemp("context_models")
    out = {}
    for name, context in (("with", True), ("without", False)):
        repo = base / f"repo_{name}"
        spec = _build(context_shop, repo, context)
        out[name] = (repo, spec, _train(context_shop, repo, base / f"din_{name}"))
    return out


def test_the_spec_declares_the_context_columns(trained):
    _, spec, _ = trained["with"]
    assert [f.name for f in spec.context] == list(CONTEXT)
    assert spec.context[1].vocabulary == ("desktop", "mobile", "tablet")
    inputs = spec.model_inputs(use_moon=False)
    assert [f.name for f in inputs.sparse if f.group == "context"] == list(CONTEXT)
    assert trained["without"][1].context == ()


def test_a_din_trained_with_context_ranks_better_than_without(trained):
    with_auc = trained["with"][2].test["auc"]
    without_auc = trained["without"][2].test["auc"]
    print(f"test AUC with context {with_auc:.4f}, without {without_auc:.4f}")
    assert with_auc > without_auc + 0.03


@pytest.fixture(scope="module")
def scorer(trained):
    repo, _, report = trained["with"]
    store = open_store(repo)
    materialize_all(store)
    s = CTRScorer(store, report.model_dir)
    yield store, s
    s.close()


def test_online_scores_equal_offline_with_context(trained, scorer):
    """check_consistency samples vocabulary values, nulls and an unseen value per context feature,
    scores each row offline (entity rows -> training_data) and online (/score's context)."""
    store, _ = scorer
    report = check_consistency(store, trained["with"][2].model_dir, n_rows=120)
    assert report.ok, report.line()
    assert report.differing_features == {}


def test_offline_rows_with_given_context_match_the_request(trained, scorer):
    """The same (user, item) rows at two contexts: offline and online agree at each, and the
    context moves the score (the model uses it)."""
    store, s = scorer
    base = sample_rows(store, 40)
    scores = []
    for hour, device in ((2, "desktop"), (20, "mobile")):
        given = base.assign(hour_of_day=hour, device=device)
        report = check_consistency(store, trained["with"][2].model_dir, rows=given)
        assert report.ok, report.line()
        scores.append(report.rows["online"].to_numpy())
    assert np.mean(scores[1] - scores[0]) > 0.05  # evening on a phone clicks more (synthetic.HOUR_EFFECT)


def test_request_context_values_missing_keys_and_unknown_keys(scorer):
    _, s = scorer
    user, items = s.ids.users.decode([1])[0], s.ids.items.decode([1, 2, 3])
    at_13 = s.score(user, items, {"hour_of_day": 13, "device": "tablet"})
    assert np.array_equal(at_13, s.score(user, items, {"hour_of_day": "13", "device": "tablet"}))  # compared as text
    unknown = s.score(user, items, {"hour_of_day": None, "device": None})
    assert np.array_equal(unknown, s.score(user, items, {"hour_of_day": 99, "device": "fridge"}))  # unseen -> 0
    assert not np.array_equal(at_13, unknown)
    with pytest.raises(ContextError, match=r"lacks \['device'\]"):
        s.score(user, items, {"hour_of_day": 13})
    with pytest.raises(ContextError, match="not context features"):
        s.score(user, items, {"hour_of_day": 13, "device": "tablet", "page": 1})
    with pytest.raises(ContextError, match="integer, a string or null"):
        s.score(user, items, {"hour_of_day": 1.5, "device": "tablet"})


def test_entity_rows_without_the_context_columns_are_refused(trained, context_shop):
    repo, spec, _ = trained["with"]
    rows = entity_rows(coded_dataset(load_dataset(context_shop))[0]).head(20)  # no spec: no context columns
    with pytest.raises(TrainingSetError, match=r"context column\(s\) \['hour_of_day', 'device'\]"):
        training_data(open_store(repo), spec, rows, use_moon=False)


def test_the_model_refuses_a_store_without_its_context(trained):
    with pytest.raises(ModelStoreMismatchError, match="context"):
        CTRScorer(open_store(trained["without"][0]), trained["with"][2].model_dir)


def test_score_over_http_takes_the_context(trained, scorer):
    repo, _, report = trained["with"]
    _, s = scorer
    body = {"user_id": 1, "candidate_item_ids": [1, 2, 3], "context": {"hour_of_day": 20, "device": "mobile"}}
    with TestClient(create_app(ServingSettings(repo=str(repo), model_dir=str(report.model_dir)))) as client:
        r = client.post("/score", json=body)
        assert r.status_code == 200, r.text
        assert np.allclose(r.json()["scores"], s.score(1, [1, 2, 3], body["context"]), atol=1e-6)
        r = client.post("/score", json={**body, "context": {"hour_of_day": 20}})
        assert r.status_code == 422 and "lacks ['device']" in r.text
        r = client.post("/score", json={**body, "context": {"hour_of_day": 2.5, "device": "mobile"}})
        assert r.status_code == 422 and "2.5" not in r.text  # the schema refuses a float, without echoing it


def test_projected_and_onnx_paths_take_the_context(trained, tmp_path):
    """The projected item view (context is a request field of the projection) and the onnx
    backend (every sparse field is a graph input) score as offline, context included."""
    repo, _, report = trained["with"]
    pinned = tmp_path / "din_pinned"
    shutil.copytree(report.model_dir, pinned)
    assert main(["export", "--projected-items", "--repo", str(repo), "--model-dir", str(pinned)]) == 0
    store = open_store(repo)
    projected = CTRScorer(store, pinned)
    assert projected.projected is not None  # scores from the pinned view, not the plain batch
    projected.close()
    for model_dir, backend in ((pinned, "torch"), (report.model_dir, "onnx")):
        result = check_consistency(store, model_dir, n_rows=60, seed=2, backend=backend)
        assert result.ok, f"{backend} {model_dir.name}: {result.line()}"


def test_train_cli_takes_the_context_columns_from_the_log(trained, context_shop, tmp_path):
    """`moon-features train --data`: the entity rows carry the spec's context columns, and the
    artifact records the spec with its context."""
    repo = trained["with"][0]
    out = tmp_path / "din_cli"
    assert main(["train", "--data", str(context_shop), "--repo", str(repo), "--out", str(out), "--model", "din",
                 "--no-moon", "--epochs", "1"]) in (0, None)
    recorded = from_pretrained(out).extra["feature_spec"]
    assert [f["name"] for f in recorded["context"]] == list(CONTEXT)
