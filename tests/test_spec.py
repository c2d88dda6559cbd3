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
