"""examples/bring_your_own_catalogue.py end to end (issue #19): a purchase-only shop with 9-digit
article ids, string customer ids and 70% items without text goes through the README's commands;
online scores equal offline ones; the user's own ids round-trip; and what used to fail silently
(a half-materialized store, another id map) is refused with the fix."""
from __future__ import annotations

import json
import os
from dataclasses import replace
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moon_features.consistency import check_consistency
from moon_features.data.layout import load_dataset
from moon_features.data.shop_variants import drop_text
from moon_features.data.validate import validate_dataset
from moon_features.idmap import RESERVED_START, DatasetIds, coded_dataset
from moon_features.serving.errors import ConsistencyError
from moon_features.serving.scorer import CTRScorer
from moon_features.spec import IdMapMismatchError
from moon_features.store.markers import SQLITE_TABLE
from moon_features.store.repo import load_spec, open_store
from moon_features.store.sources import entity_rows
from moon_features.training.train import time_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import bring_your_own_catalogue as byo  # noqa: E402


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("byo")
    summary = byo.run(workdir, items=80, seed=0, epochs=1, encoder_epochs=1)
    return workdir, summary


def test_the_example_runs_on_sparse_string_ids_missing_text_and_purchases_only(example):
    workdir, summary = example
    orders, shop = load_dataset(workdir / "orders"), load_dataset(workdir / "shop")
    assert (orders.interactions["label"] == 1).all()  # a purchase log: no impressions, no negatives
    assert orders.items["item_id"].max() == 949_551_001 and orders.users["user_id"].map(type).eq(str).all()
    assert orders.items["title"].isna().mean() > 0.5
    assert (shop.interactions["label"] == 0).sum() >= 3 * len(orders.interactions)  # sampled negatives
    # both models trained and were measured on the test split (the cold AUC may be n/a on so few items)
    assert np.isfinite(summary["ids"]["test_auc"]) and np.isfinite(summary["moon"]["test_auc"])
    # `encoder train --before auto`: the encoder saw the log of `train`'s training period only
    before = pd.Timestamp(summary["encoder_before"])
    train_rows, _, _ = time_split(entity_rows(coded_dataset(shop)[0]))
    assert before == train_rows["event_timestamp"].max()
    trained = json.loads((workdir / "encoder" / "model" / "training.json").read_text())
    read = int((pd.to_datetime(shop.interactions["event_timestamp"], utc=True) < before).sum())
    assert trained["interactions"] == read < len(train_rows)  # nothing at or after the cut


def test_one_request_in_the_users_own_ids_is_served_from_every_view(example):
    workdir, summary = example
    shop = load_dataset(workdir / "shop")
    scored = summary["scored"]
    assert scored["user"] in set(shop.users["user_id"])  # a customer code, not a dense code
    assert set(scored["items"]) <= set(shop.items["item_id"].tolist())  # article numbers round-trip
    assert min(scored["items"]) > 100_000_000
    # profiles and histories were materialized, not only the embeddings
    assert scored["user_found"] and scored["items_found"] == len(scored["items"]) and scored["history_length"] > 0
    ids = DatasetIds.load(workdir / "repo" / "data")
    raw = shop.items["item_id"].to_numpy()
    assert ids.items.decode(ids.items.encode(raw)).tolist() == raw.tolist()
    users = shop.users["user_id"].to_numpy()
    assert ids.users.decode(ids.users.encode(users)).tolist() == users.tolist()


def test_online_scores_equal_offline_scores(example):
    workdir, _ = example
    store = open_store(workdir / "repo")
    report = check_consistency(store, workdir / "models" / "din_moon", n_rows=60)
    assert report.ok and report.max_abs_diff < 1e-5, report.line()


def test_a_half_materialized_store_is_refused_with_the_command_that_fills_it(example, tmp_path):
    """The old BYO sequence materialized only the embeddings; check-consistency must say so."""
    workdir, _ = example
    repo = tmp_path / "repo"
    shutil.copytree(workdir / "repo", repo)
    store = open_store(repo)
    db = repo / "data" / "online.db"
    with sqlite3.connect(db) as conn:  # as if only `materialize-embeddings` had run
        conn.execute(f"DELETE FROM {SQLITE_TABLE} WHERE view NOT LIKE 'item_moon_embedding%'")
    with pytest.raises(ConsistencyError, match="moon-features materialize --repo") as err:
        check_consistency(store, workdir / "models" / "din_moon", n_rows=20)
    assert "user_profile" in str(err.value) and "user_behavior_sequence" in str(err.value)


def test_a_server_with_other_id_map_files_is_refused(example, tmp_path):
    workdir, _ = example
    repo = tmp_path / "repo"
    shutil.copytree(workdir / "repo", repo)
    path = repo / "data" / "id_map_item.parquet"
    m = pd.read_parquet(path)
    m["raw_id"] = m["raw_id"].to_numpy()[::-1]  # another catalogue's map: code 1 is another article
    m.to_parquet(path, index=False)
    with pytest.raises(IdMapMismatchError, match="features build"):
        CTRScorer(open_store(repo), workdir / "models" / "din_moon")


def test_a_model_trained_under_another_id_map_is_refused(example, tmp_path):
    workdir, _ = example
    model = tmp_path / "model"
    shutil.copytree(workdir / "models" / "din_moon", model)
    config = json.loads((model / "config.json").read_text())
    assert config["extra"]["feature_spec"]["id_maps"] == load_spec(workdir / "repo").id_maps
    config["extra"]["feature_spec"]["id_maps"] = "item:0000000000000000,user:0000000000000000"
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(IdMapMismatchError, match="Retrain the model"):
        CTRScorer(open_store(workdir / "repo"), model)


def test_evaluate_scores_the_test_split_and_prints_no_third_party_warning(example):
    """ibis's fetch_arrow_table() DeprecationWarning came on every offline read (evaluate, train)."""
    workdir, _ = example
    env = {**os.environ, "PYTHONWARNINGS": "default", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "moon_features.cli", "evaluate", "--repo", str(workdir / "repo"),
                             "--data", str(workdir / "shop"), "--model-dir", str(workdir / "models" / "din_ids")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Warning" not in result.stderr + result.stdout
    # evaluate scores the test split by default, not every row (in-sample AUC misled: 0.844 vs 0.53)
    _, _, test = time_split(entity_rows(coded_dataset(load_dataset(workdir / "shop"))[0]))
    assert "evaluating on the test rows" in result.stderr
    assert json.loads(result.stdout)["n"] == len(test) and json.loads(result.stdout)["auc"] > 0


def test_validate_counts_the_items_without_text(shop):
    no_text = drop_text(shop, 0.7, seed=0)
    report = validate_dataset(no_text, check_images=False)
    assert report.items_without_text == int(no_text.items["title"].isna().sum()) > 0.5 * len(shop.items)
    assert f"{report.items_without_text:,} without text" in report.summary()


def test_string_ids_with_leading_zeros_are_kept_as_given(shop):
    """Article numbers like "000123" are strings: validated, mapped, never read as the int 123."""
    as_text = {i: f"{i:09d}" for i in shop.items["item_id"]}
    ds = replace(shop, items=shop.items.assign(item_id=shop.items["item_id"].map(as_text)),
                 interactions=shop.interactions.assign(item_id=shop.interactions["item_id"].map(as_text)))
    validate_dataset(ds, check_images=False)
    ids = DatasetIds.fit(ds)
    assert ids.items.string_ids and ids.items.decode(ids.items.encode(["000000001"])).tolist() == ["000000001"]
    assert ids.items.encode(["1"])[0] >= RESERVED_START  # "1" is not "000000001": an unknown id
