"""The spec as a list of typed fields (moon_features.fields): what model_inputs and feature_refs
derive from, context features, and spec.json files written before either existed."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from feast.types import Float32, Int64

from ctr_models.inputs import ModelInputs, SequenceField, SparseField
from moon_features.cli import main
from moon_features.data.layout import load_dataset
from moon_features.data.synthetic import generate_shop
from moon_features.fields import (ENTITY_ROWS, CategoricalField, ContextColumnError, ContextFeature, DenseFeature,
                                  EmbeddingFeature, IdFeature, SequenceFeature)
from moon_features.spec import EmbeddingSpec, FeatureSpec, SpecMismatchError
from moon_features.store.definitions import profile_schema

# a spec.json as `features build` wrote it before context features (and the typed fields) existed
OLD_SPEC_JSON = """{
  "name": "old-shop", "max_user_id": 50, "max_item_id": 120,
  "user_categorical": [{"name": "gender", "vocabulary": ["F", "M"]}],
  "item_categorical": [{"name": "category", "vocabulary": ["bag", "mug", "shirt"]}],
  "user_dense": [], "item_dense": ["price"], "max_len": 30, "sequence_attribute": "category",
  "embedding": {"version": 2, "dim": 64}, "id_maps": "item:00000000000000aa,user:00000000000000bb",
  "dense_stats": {"price": [25.0, 12.5]}, "extra": {}
}"""


def _old_fingerprint(d: dict) -> str:
    d = {k: v for k, v in d.items() if k != "extra"}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def test_an_old_spec_file_loads_and_keeps_its_dict_and_fingerprint(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(OLD_SPEC_JSON)
    spec = FeatureSpec.load(path)
    assert spec.context == ()
    old = json.loads(OLD_SPEC_JSON)
    assert json.loads(json.dumps(spec.to_dict())) == old  # no "context" key: model artifacts recording it still match
    assert spec.fingerprint() == _old_fingerprint(old)
    spec.check_compatible(FeatureSpec.from_dict(old))


def test_the_old_spec_derives_the_model_inputs_it_always_did():
    """The artifact contract: models record ModelInputs; the typed fields give the same ones."""
    spec = FeatureSpec.from_dict(json.loads(OLD_SPEC_JSON))
    assert spec.model_inputs() == ModelInputs(
        sparse=(SparseField("user_id", 51, "user"), SparseField("item_id", 121, "item"),
                SparseField("gender", 3, "user"), SparseField("category", 4, "item")),
        dense=("price",),
        sequences=(SequenceField("hist_item_id", "item_id"), SequenceField("hist_category", "category")),
        max_len=30, moon_dim=64)
    assert spec.feature_refs() == ["user_profile:gender", "item_profile:category", "item_profile:price",
                                   "user_behavior_sequence:hist_item_ids", "user_behavior_sequence:hist_len",
                                   "item_moon_embedding_v2:embedding"]


def test_fields_are_typed_with_group_and_source():
    spec = FeatureSpec.from_dict({**json.loads(OLD_SPEC_JSON), "context": [{"name": "device",
                                                                            "vocabulary": ["desktop", "mobile"]}]})
    by_name = {f.name: f for f in spec.fields()}
    assert isinstance(by_name["user_id"], IdFeature) and by_name["user_id"].source == ENTITY_ROWS
    assert isinstance(by_name["category"], CategoricalField) and by_name["category"].source == "item_profile"
    assert isinstance(by_name["price"], DenseFeature) and (by_name["price"].mean, by_name["price"].std) == (25.0, 12.5)
    assert isinstance(by_name["hist_category"], SequenceFeature) and by_name["hist_category"].target == "category"
    assert isinstance(by_name["embedding"], EmbeddingFeature) and by_name["embedding"].source == "item_moon_embedding_v2"
    device = by_name["device"]
    assert isinstance(device, ContextFeature) and (device.group, device.source) == ("context", ENTITY_ROWS)
    assert spec.model_inputs().sparse[-1] == SparseField("device", 3, "context")
    assert not any(r.startswith(ENTITY_ROWS) or "device" in r for r in spec.feature_refs())  # no Feast view
    back = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and back.fingerprint() == spec.fingerprint()
    with pytest.raises(SpecMismatchError, match="context"):
        spec.check_compatible(spec.from_dict(json.loads(OLD_SPEC_JSON)))


def test_context_values_are_coded_as_text_with_unseen_and_null_as_zero():
    hour = ContextFeature.from_column("hour", pd.Series([3, 13, 13, 7]))
    assert hour.vocabulary == ("13", "3", "7")
    assert hour.encode([13, "13", 3, 99, None]).tolist() == [1, 1, 2, 0, 0]
    # an integer column with a null reads back as float: 13.0 is the category 13
    assert hour.encode(pd.Series([13.0, np.nan, 7.0])).tolist() == [1, 0, 3]
    with pytest.raises(ContextColumnError, match="fractional"):
        hour.encode(pd.Series([1.0, 2.5]))


def test_features_build_refuses_bad_context_columns(tmp_path):
    ds = generate_shop(tmp_path / "shop", n_items=40, seed=1, progress=False, context=True)
    with pytest.raises(ContextColumnError, match="no column 'weather'"):
        FeatureSpec.from_dataset(ds, context_columns=["weather"])
    with pytest.raises(ContextColumnError, match="clashes"):
        FeatureSpec.from_dataset(ds, context_columns=["label"])
    spec = FeatureSpec.from_dataset(ds, embedding=EmbeddingSpec(1, 32), context_columns=["device"])
    assert [f.name for f in spec.context] == ["device"] and spec.with_embedding(None).context == spec.context


def test_the_context_shop_changes_only_labels_and_adds_columns(tmp_path):
    """context=True draws the device from a generator of its own: the log's users, items and
    times are those of the default shop, whose draws benchmarks depend on."""
    plain = generate_shop(tmp_path / "plain", n_items=60, seed=2, progress=False).interactions
    ctx = generate_shop(tmp_path / "ctx", n_items=60, seed=2, progress=False, context=True).interactions
    assert list(ctx.columns) == list(plain.columns) + ["hour_of_day", "device"]
    same = ["user_id", "item_id", "event_timestamp"]
    assert ctx[same].equals(plain[same])
    assert (ctx["hour_of_day"] == ctx["event_timestamp"].dt.hour).all()
    assert set(ctx["device"]) == {"mobile", "desktop", "tablet"}


def test_the_profile_views_schema_comes_from_the_typed_fields():
    spec = FeatureSpec.from_dict({**json.loads(OLD_SPEC_JSON), "context": [{"name": "device", "vocabulary": ["x"]}]})
    item = profile_schema(spec, "item_profile")
    assert [(f.name, f.dtype, f.tags) for f in item] == [("category", Int64, {"vocab_size": "4"}), ("price", Float32, {})]
    assert [f.name for f in profile_schema(spec, "user_profile")] == ["gender"]  # context: in no view


def test_data_generate_context_writes_the_context_columns(tmp_path):
    assert main(["data", "generate", "--out", str(tmp_path / "s"), "--items", "40", "--context"]) in (0, None)
    log = load_dataset(tmp_path / "s").interactions
    assert {"hour_of_day", "device"} <= set(log.columns) and log["hour_of_day"].between(0, 23).all()
