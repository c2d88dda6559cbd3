from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("deepctr_torch")
from deepctr_torch.models import DIN as DeepCTRDIN  # noqa: E402
from deepctr_torch.models import DeepFM as DeepCTRDeepFM  # noqa: E402

from ctr_models import CTRData  # noqa: E402
from ctr_models.inputs import SequenceField  # noqa: E402
from fixtures.ctr_data import synthetic_ctr_arrays, tiny_inputs  # noqa: E402
from moon_features.training.deepctr_adapter import (DeepCTRAdapterError, feature_columns,  # noqa: E402
                                                    history_feature_list, to_deepctr_input)


def test_deepctr_din_trains_one_step_from_a_ctr_batch():
    inputs = tiny_inputs(moon_dim=4)
    arrays, table = synthetic_ctr_arrays(inputs, 64, moon_dim=4)
    arrays["item_id"][0] = 10_000  # unknown id must not crash deepctr's lookup
    batch = CTRData(arrays, inputs, moon_table=table).batch(slice(0, 32))
    cols = feature_columns(inputs, 4, include_moon=True)
    model = DeepCTRDIN(cols, history_feature_list(inputs), dnn_hidden_units=(8,), att_hidden_size=(8,), seed=0)
    x = to_deepctr_input(batch, inputs, include_moon=True)
    assert x["item_id"][0] == 0 and x["hist_item_id"].shape == (32, inputs.max_len)
    assert x["item_emb"].shape == (32, 4)
    model.compile("adam", "binary_crossentropy")
    before = [p.detach().clone() for p in model.parameters()]
    model.fit(x, batch.label.numpy(), batch_size=32, epochs=1, verbose=0)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    p = model.predict(x, batch_size=32)
    assert p.shape == (32, 1) and np.isfinite(p).all()


def test_deepctr_deepfm_from_arrays_without_sequences():
    inputs = tiny_inputs()
    arrays, _ = synthetic_ctr_arrays(inputs, 16)
    cols = feature_columns(inputs, 4, include_sequences=False)
    model = DeepCTRDeepFM(cols, cols, dnn_hidden_units=(8,), seed=0)
    p = model.predict(to_deepctr_input(arrays, inputs, include_sequences=False), batch_size=16)
    assert p.shape == (16, 1)


def test_moon_vectors_from_ctrdata_table_match_batch():
    inputs = tiny_inputs(moon_dim=4)
    arrays, table = synthetic_ctr_arrays(inputs, 16, moon_dim=4)
    data = CTRData(arrays, inputs, moon_table=table)
    from_data = to_deepctr_input(data, inputs, include_moon=True)["item_emb"]
    from_batch = to_deepctr_input(data.batch(slice(None)), inputs, include_moon=True)["item_emb"]
    np.testing.assert_array_equal(from_data, from_batch)
    np.testing.assert_array_equal(from_data, table[arrays["item_id"]])


def test_several_behaviour_sequences_are_refused_by_name():
    """deepctr-torch shares one length name: a purchase sequence would be read with hist_len."""
    inputs = tiny_inputs()
    inputs = replace(inputs, sequences=inputs.sequences + (SequenceField("hist_purchase_item_id", "item_id", "purchase"),))
    with pytest.raises(DeepCTRAdapterError, match=r"one behaviour sequence.*\['purchase'\]"):
        feature_columns(inputs, 4)
    assert len(feature_columns(inputs, 4, include_sequences=False)) == len(inputs.sparse)
