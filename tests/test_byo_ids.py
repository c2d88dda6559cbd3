"""Natural ids (issue #19): sparse int64 and string ids are mapped to dense codes by `features build`,
training uses the codes, and serving (`CTRScorer.score`, /score, /events) takes the user's own ids."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ctr_models.trainer import TrainerConfig
from moon_features.data.layout import load_dataset, save_dataset
from moon_features.data.shop_variants import sparse_ids
from moon_features.data.validate import DatasetError, validate_dataset
from moon_features.features import build_feature_repo
from moon_features.idmap import RESERVED_START, DatasetIds, IdMap, IdMapError, coded_dataset
from moon_features.serving.app import create_app
from moon_features.serving.scorer import CTRScorer
from moon_features.serving.settings import ServingSettings
from moon_features.store.repo import materialize_all
from moon_features.store.sources import entity_rows
from moon_features.training.train import train_from_feast

TINY_DIN = {"embed_dim": 8, "dnn_hidden": (16,), "attention_hidden": (8,)}


def test_dense_positive_ids_keep_their_values_and_sparse_or_string_ids_get_codes():
    assert IdMap.fit(pd.Series([3, 1, 2]), "item").identity
    sparse = IdMap.fit(pd.Series([949_551_001, 5, 0, -7]), "item")
    assert sparse.max_code == 4
    assert sparse.encode([-7, 0, 5, 949_551_001]).tolist() == [1, 2, 3, 4]
    assert sparse.decode([4, 1]).tolist() == [949_551_001, -7]
    text = IdMap.fit(pd.Series(["007", "010", "007x"]), "user")
    assert text.encode(["007", "007x", "010"]).tolist() == [1, 2, 3]  # leading zeros kept: "007" != "7"
    new = text.encode(["7", "7", "new-customer"])
    assert new[0] == new[1] != new[2] and (new >= RESERVED_START).all()  # unknown: stable, past every spec
    with pytest.raises(IdMapError, match="not in the repository's id map"):
        text.encode(["7"], unknown="raise")


@pytest.mark.parametrize("values, fix", [
    (pd.Series([1.5, 2.0]), "cast ids to int64"),
    (pd.Series([1, "a"], dtype=object), "use one type"),
    (pd.Series(["a", None], dtype=object), "every row needs an id"),
    (pd.Series(["a", ""], dtype=object), "1..256 characters"),
])
def test_ids_no_map_can_hold_are_refused_with_the_fix(values, fix):
    with pytest.raises(IdMapError, match=fix):
        IdMap.fit(values, "item")


def test_validation_refuses_mixed_id_types_across_tables(shop):
    ds = sparse_ids(shop)
    ds.interactions["item_id"] = ds.interactions["item_id"].astype(str)
    with pytest.raises(DatasetError, match="use one id type in every table"):
        validate_dataset(ds, check_images=False)


@pytest.fixture(scope="module")
def sparse_shop(shop, tmp_path_factory):
    """The shop with item ids up to 949,551,001 and string customer ids ('C' + 7 digits)."""
    root = tmp_path_factory.mktemp("sparse_shop")
    ds = sparse_ids(shop, seed=1)
    ds.root = root
    save_dataset(ds, root)
    return root


@pytest.fixture(scope="module")
def sparse_repo(sparse_shop, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sparse_repo")
    repo = tmp / "repo"
    raw = load_dataset(sparse_shop)
    coded = coded_dataset(raw)[0]
    # embeddings are keyed by the codes, as `encoder embed` writes them (it maps the ids the same way)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(coded.items), 16)).astype(np.float32)
    (repo / "data").mkdir(parents=True)
    pd.DataFrame({"item_id": coded.items["item_id"], "event_timestamp": coded.items["first_seen"],
                  "embedding": list(vectors / np.linalg.norm(vectors, axis=1, keepdims=True)),
                  "encoder_version": "1"}).to_parquet(repo / "data/item_moon_embedding_v1.parquet")
    spec, store = build_feature_repo(sparse_shop, repo, max_len=10)
    rows = entity_rows(coded)
    report = train_from_feast(repo, rows, tmp / "model", model="din", use_moon=True,
                              trainer_config=TrainerConfig(epochs=1, progress=False), model_overrides=TINY_DIN)
    materialize_all(store)
    return repo, tmp / "model", spec, store, raw, report


def test_a_shop_with_sparse_and_string_ids_trains_on_dense_codes(sparse_repo):
    repo, model_dir, spec, store, raw, report = sparse_repo
    # before the map: max_item_id 949,551,001 -> a 60 GB embedding table; now one row per item
    assert spec.max_item_id == len(raw.items) and spec.max_user_id == len(raw.users)
    assert np.isfinite(report.test["auc"])
    ids = DatasetIds.load(repo / "data")
    assert not ids.items.identity and ids.users.string_ids


def test_the_scorer_takes_the_users_own_ids(sparse_repo):
    repo, model_dir, spec, store, raw, _ = sparse_repo
    scorer = CTRScorer(store, model_dir)
    user = raw.interactions["user_id"].iloc[-1]
    items = raw.items["item_id"].to_numpy()[:5]
    res = scorer.score_detailed(user, items)
    assert res.user_found and res.item_found.all() and res.history_length > 0
    assert res.item_ids.tolist() == items.tolist()
    # the same request in codes, read straight from the reader, gives the same scores
    codes = scorer.ids.items.encode(items)
    assert codes.max() <= spec.max_item_id
    unknown = scorer.score_detailed("C-never-seen", [items[0], 123])
    assert not unknown.user_found and unknown.unknown_item_ids == [123]
    scorer.close()


def test_http_score_and_purchase_events_take_the_users_own_ids(sparse_repo):
    repo, model_dir, spec, store, raw, _ = sparse_repo
    settings = ServingSettings(repo=str(repo), model_dir=str(model_dir), event_types="click,purchase")
    items = [int(i) for i in raw.items["item_id"].to_numpy()[:3]]
    with TestClient(create_app(settings)) as client:
        r = client.post("/score", json={"user_id": "C-new", "candidate_item_ids": items})
        assert r.status_code == 200, r.text
        assert len(r.json()["scores"]) == 3 and not r.json()["user_found"]
        r = client.post("/events", json={"user_id": "C-new", "item_id": items[1], "event_type": "purchase"})
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == "C-new" and r.json()["hist_item_ids"] == [items[1]]
        r = client.post("/score", json={"user_id": "C-new", "candidate_item_ids": items})
        assert r.json()["history_length"] == 1  # the new customer's purchase is in their sequence
        r = client.post("/events", json={"user_id": "C-new", "item_id": items[1], "event_type": "view"})
        assert r.status_code == 422 and "event_types" in r.text
        r = client.post("/events", json={"user_id": "C-new", "item_id": 5, "event_type": "purchase"})
        assert r.status_code == 422 and "not in the catalogue" in r.text
