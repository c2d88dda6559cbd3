from __future__ import annotations

import numpy as np
import pytest

from moon_features.spec import CategoricalFeature, EmbeddingSpec, FeatureSpec, SpecMismatchError


def test_round_trip_and_fingerprint(shop, tmp_path):
    spec = FeatureSpec.from_dataset(shop, max_len=30, embedding=EmbeddingSpec(1, 64))
    back = FeatureSpec.load(spec.save(tmp_path / "spec.json"))
    assert back == spec and back.fingerprint() == spec.fingerprint()
    assert back.with_embedding(EmbeddingSpec(2, 64)).fingerprint() != spec.fingerprint()


def test_model_inputs_are_derived_from_the_spec(shop):
    spec = FeatureSpec.from_dataset(shop, embedding=EmbeddingSpec(1, 32))
    inputs = spec.model_inputs()
    assert inputs.sparse_field("item_id").vocab_size == shop.items["item_id"].max() + 1
    assert inputs.sparse_field("category").vocab_size == shop.items["category"].nunique() + 1
    assert [s.name for s in inputs.sequences] == ["hist_item_id", "hist_category"]
    assert inputs.moon_dim == 32 and spec.model_inputs(use_moon=False).moon_dim is None
    assert inputs.dense == ("price",)


def test_unknown_categories_encode_to_padding():
    f = CategoricalFeature("colour", ("blue", "red"))
    assert f.encode(["red", "green", "blue"]).tolist() == [2, 0, 1]


def test_mismatch_names_the_field(shop):
    spec = FeatureSpec.from_dataset(shop, embedding=EmbeddingSpec(1, 32))
    with pytest.raises(SpecMismatchError, match="embedding"):
        spec.check_compatible(spec.with_embedding(EmbeddingSpec(1, 64)))


def test_unsupported_dimension_is_refused():
    with pytest.raises(ValueError, match="unsupported"):
        EmbeddingSpec(1, 100)


def test_dense_features_are_standardised_with_the_recorded_statistics(shop, tmp_path):
    """features build records each dense feature's mean / std; training and serving both build
    their rows through batching.row_arrays, so both read the same standardised values."""
    from moon_features.batching import row_arrays

    spec = FeatureSpec.from_dataset(shop)
    price = shop.items["price"].astype(float)
    assert spec.dense_stats["price"] == pytest.approx([price.mean(), price.std()])
    back = FeatureSpec.load(spec.save(tmp_path / "spec.json"))
    back.check_compatible(spec)  # survives the JSON round trip unchanged
    ids = shop.items["item_id"].to_numpy()
    columns = {"user_id": np.ones(len(ids), np.int64), "item_id": ids,
               **{f.name: np.zeros(len(ids), np.int64) for f in spec.user_categorical + spec.item_categorical},
               "price": shop.items["price"].to_numpy()}
    z = row_arrays(columns, back)["price"]
    assert abs(z.mean()) < 1e-5 and z.std(ddof=1) == pytest.approx(1.0, abs=1e-4)
    old = FeatureSpec.from_dict({**spec.to_dict(), "dense_stats": {}})  # a spec from before: read raw
    assert np.allclose(row_arrays(columns, old)["price"], columns["price"])
    with pytest.raises(SpecMismatchError, match="dense_stats"):
        spec.check_compatible(old)
