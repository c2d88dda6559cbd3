"""Training sets from Feast match the data, keep the caller's row order, and train a real model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ctr_models.trainer import TrainerConfig
from moon_features.data.sequences import build_sequences, sequence_as_of
from moon_features.features import build_feature_repo
from moon_features.spec import EmbeddingSpec, SpecMismatchError
from moon_features.store.sources import entity_rows
from moon_features.spec import ITEM_PROFILE_VIEW
from moon_features.store.definitions import source_path
from moon_features.training.retrieval import item_attribute_table, moon_table, pad_sequences, training_data
from moon_features.training.train import evaluate_from_feast, load_model, split_points, time_order, train_from_feast


def write_content_embeddings(ds, path, dim=32, seed=0):
    """Stand-in embedding source for plumbing tests: the shop's visual attributes (colour,
    pattern) one-hot plus noise, as a content encoder would see them. The encoder makes real ones."""
    rng = np.random.default_rng(seed)
    visual = np.concatenate([pd.get_dummies(ds.items[c]).to_numpy(float) for c in ("colour", "pattern")], axis=1)
    x = np.concatenate([visual, rng.normal(0, 0.2, (len(ds.items), dim - visual.shape[1]))], axis=1)
    x = x.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"item_id": ds.items["item_id"], "event_timestamp": ds.items["first_seen"],
                  "embedding": list(x), "encoder_version": "1"}).to_parquet(path)
    return x


@pytest.fixture()
def moon_repo(shop, shop_dir, tmp_path):
    repo = tmp_path / "repo"
    vectors = write_content_embeddings(shop, repo / "data/item_moon_embedding_v1.parquet")
    spec, store = build_feature_repo(shop_dir, repo, max_len=10)
    return repo, spec, store, vectors


def _latest_rows_from_parquet(path, column: str) -> pd.Series:
    """item_id -> the column of the item's newest row, read straight from the source file."""
    frame = pd.read_parquet(path).sort_values("event_timestamp", kind="stable")
    return frame.drop_duplicates("item_id", keep="last").set_index("item_id")[column]


def test_item_tables_come_through_feast_and_equal_the_sources_newest_rows(moon_repo, shop):
    """moon_table / item_attribute_table read each item's newest row through the offline store; a
    re-encoded item (a second, newer row in the source) gets its new vector."""
    repo, spec, store, vectors = moon_repo
    path = repo / "data/item_moon_embedding_v1.parquet"
    frame = pd.read_parquet(path)
    newer = frame.iloc[[0]].assign(event_timestamp=frame.event_timestamp.max() + pd.Timedelta(days=1),
                                   embedding=[np.roll(vectors[0], 1)])
    pd.concat([frame, newer], ignore_index=True).to_parquet(path)
    table = moon_table(store, spec)
    want = _latest_rows_from_parquet(path, "embedding")
    assert np.array_equal(table[0], np.zeros(spec.embedding.dim, np.float32))
    for item_id, vector in want.items():
        assert np.array_equal(table[item_id], np.asarray(vector, np.float32)), item_id
    assert np.array_equal(table[int(frame.item_id[0])], np.roll(vectors[0], 1))
    codes = item_attribute_table(store, spec, spec.sequence_attribute)
    want = _latest_rows_from_parquet(source_path(repo / "data", ITEM_PROFILE_VIEW), spec.sequence_attribute)
    assert codes[0] == 0 and (codes[want.index.to_numpy()] == want.to_numpy()).all()


def test_one_fetch_then_split_equals_a_fetch_per_split(moon_repo, shop):
    """train_from_feast fetches all rows once and splits: the same arrays as fetching each split."""
    repo, spec, store, _ = moon_repo
    rows = time_order(entity_rows(shop).sample(300, random_state=5))
    a, b = split_points(len(rows))
    whole = training_data(store, spec, rows, use_moon=True)
    for lo, hi in ((0, a), (a, b), (b, len(rows))):
        part = training_data(store, spec, rows.iloc[lo:hi], use_moon=True)
        sliced = whole.subset(np.arange(lo, hi))
        assert set(part.arrays) == set(sliced.arrays)
        for name, values in part.arrays.items():
            assert np.array_equal(values, sliced.arrays[name]), name


def test_pad_sequences_keeps_the_most_recent_and_zeroes_unknown_ids():
    col = pa.chunked_array([pa.array([[1, 2, 3, 4], [], None, [5, 999]], pa.list_(pa.int64()))])
    padded, lengths = pad_sequences(col, max_len=3, max_id=100)
    assert padded.tolist() == [[2, 3, 4], [0, 0, 0], [0, 0, 0], [5, 0, 0]]
    assert lengths.tolist() == [3, 0, 0, 2]


def test_training_data_is_point_in_time_and_in_caller_order(moon_repo, shop):
    repo, spec, store, vectors = moon_repo
    rows = entity_rows(shop).sample(400, random_state=3)  # shuffled on purpose
    data = training_data(store, spec, rows, use_moon=True)
    assert len(data) == len(rows)
    assert (data.column("item_id") == rows["item_id"].to_numpy()).all()
    assert (data.labels == rows["label"].to_numpy()).all()
    seq = build_sequences(shop.interactions, max_len=spec.max_len)
    for i in range(0, len(rows), 37):
        r = rows.iloc[i]
        expected = sequence_as_of(seq, r.user_id, r.event_timestamp)
        n = data.column("hist_len")[i]
        assert data.column("hist_item_id")[i][:n].tolist() == expected
    batch = data.batch(slice(0, 8))
    item_index = {int(v): k for k, v in enumerate(shop.items["item_id"])}
    np.testing.assert_allclose(batch.item_emb[0].numpy(), vectors[item_index[int(rows.iloc[0].item_id)]])
    cat = spec.item_feature("category")
    assert batch.hist["hist_category"].shape == (8, spec.max_len)
    first_hist = int(batch.hist["hist_item_id"][0, 0])
    if first_hist:
        expected_code = cat.encode([shop.items.set_index("item_id").loc[first_hist, "category"]])[0]
        assert int(batch.hist["hist_category"][0, 0]) == expected_code


def test_feast_joined_embedding_equals_the_version_table(moon_repo, shop):
    """The history-item table is the same embedding version Feast joins for the target."""
    repo, spec, store, _ = moon_repo
    rows = entity_rows(shop).head(50)
    joined = store.get_historical_features(entity_df=rows, features=[f"{spec.embedding.view_name}:embedding"]).to_df()
    joined = joined.sort_values(["event_timestamp", "user_id", "item_id"]).reset_index(drop=True)
    data = training_data(store, spec, joined[["user_id", "item_id", "event_timestamp", "label"]], use_moon=True)
    got = data.batch(slice(0, len(joined))).item_emb.numpy()
    np.testing.assert_allclose(got, np.stack(joined["embedding"].to_numpy()), rtol=0, atol=0)


@pytest.mark.slow
def test_train_from_feast_learns_and_records_the_spec(moon_repo, shop, tmp_path):
    repo, spec, store, _ = moon_repo
    report = train_from_feast(repo, entity_rows(shop), tmp_path / "din", use_moon=True,
                              trainer_config=TrainerConfig(epochs=3, progress=False))
    assert report.test["auc"] > 0.6  # the shop's clicks follow user preferences: learnable
    art, trained = load_model(tmp_path / "din", spec)
    assert trained.embedding == spec.embedding
    assert art.extra["feature_service"] == spec.feature_service_name
    assert (tmp_path / "din" / "training_curves.png").stat().st_size > 1000
    metrics = evaluate_from_feast(repo, entity_rows(shop).tail(500), tmp_path / "din")
    assert 0.0 <= metrics["auc"] <= 1.0
    with pytest.raises(SpecMismatchError, match="embedding"):
        load_model(tmp_path / "din", spec.with_embedding(EmbeddingSpec(1, 64)))
