import dataclasses

import pytest
import torch

from ctr_models import (DIN, ArtifactError, CTRData, DeepFM, DeepFMConfig, DINConfig, SpecMismatchError,
                        from_pretrained, save_pretrained)
from fixtures.ctr_data import synthetic_ctr_arrays, tiny_inputs


@pytest.mark.parametrize("model_cls,cfg", [(DIN, DINConfig(embed_dim=4, use_moon=True, dnn_hidden=(8, 4))),
                                           (DeepFM, DeepFMConfig(embed_dim=4, use_moon=True, dnn_hidden=(8,)))])
def test_round_trip(tmp_path, model_cls, cfg):
    inputs = tiny_inputs(moon_dim=6)
    arrays, table = synthetic_ctr_arrays(inputs, 20, moon_dim=6)
    batch = CTRData(arrays, inputs, moon_table=table).batch(slice(None))
    model = model_cls(cfg, inputs)
    model.train()
    model(batch)  # move the Dice / BatchNorm running statistics away from their init
    model.eval()
    extra = {"feature_service": "ctr_v1", "embedding_version": "moon_v3"}
    save_pretrained(model, tmp_path / "m", extra=extra, metrics={"val_auc": 0.7})
    art = from_pretrained(tmp_path / "m", inputs=inputs)
    assert art.extra == extra and art.inputs == inputs and art.metrics["val_auc"] == 0.7
    assert art.model.config == model.config
    torch.testing.assert_close(art.model(batch), model(batch))


def test_loading_against_other_inputs_is_a_named_error(tmp_path):
    inputs = tiny_inputs(moon_dim=6)
    save_pretrained(DIN(DINConfig(use_moon=True), inputs), tmp_path / "m", extra={"embedding_version": "v1"})
    other = dataclasses.replace(inputs, moon_dim=12)
    with pytest.raises(SpecMismatchError, match="moon_dim: artifact has 6, given 12"):
        from_pretrained(tmp_path / "m", inputs=other)
    with pytest.raises(ArtifactError, match="no config.json"):
        from_pretrained(tmp_path / "missing")
