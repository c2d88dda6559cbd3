import numpy as np
import pytest
import torch

from ctr_models import (DIN, BatchShapeError, ConfigError, CTRData, DataError, DeepFM, DeepFMConfig,
                        DINConfig)
from fixtures.ctr_data import synthetic_ctr_arrays, tiny_inputs

MOON_DIM = 8


def make(model_cls, cfg, moon):
    inputs = tiny_inputs(moon_dim=MOON_DIM if moon else None, dense=("age",))
    arrays, table = synthetic_ctr_arrays(inputs, 32, seed=1, moon_dim=MOON_DIM)
    data = CTRData(arrays, inputs, moon_table=table if moon else None)
    torch.manual_seed(0)
    return model_cls(cfg, inputs), data, inputs


CASES = [(DIN, DINConfig(embed_dim=4, dnn_hidden=(8,), attention_hidden=(8,))),
         (DeepFM, DeepFMConfig(embed_dim=4, dnn_hidden=(8,)))]


@pytest.mark.parametrize("model_cls,cfg", CASES)
@pytest.mark.parametrize("moon", [False, True])
def test_forward_backward(model_cls, cfg, moon):
    cfg.use_moon = moon
    model, data, _ = make(model_cls, cfg, moon)
    batch = data.batch(slice(0, 16))
    logits = model(batch)
    assert logits.shape == (16,) and torch.isfinite(logits).all()
    torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.label).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if moon:
        assert model.embedding.moon.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("model_cls,cfg", CASES)
def test_empty_histories_and_unknown_ids(model_cls, cfg):
    cfg.use_moon = True
    model, data, _ = make(model_cls, cfg, True)
    model.eval()
    batch = data.batch(slice(0, 8))
    batch.hist_len[:] = 0
    for t in batch.hist.values():
        t.zero_()
    batch.hist_emb.zero_()
    batch.sparse["item_id"][:4] = 10_000  # never seen: beyond the vocabulary
    batch.sparse["user_id"][4:] = -3
    out = model(batch)
    assert torch.isfinite(out).all()
    # an unknown id scores exactly like the padding id
    batch.sparse["item_id"][:4] = 0
    batch.sparse["user_id"][4:] = 0
    torch.testing.assert_close(model(batch), out)
    # a history of length 0 with width 0 works too
    batch.hist = {k: v[:, :0] for k, v in batch.hist.items()}
    batch.hist_emb = batch.hist_emb[:, :0]
    assert torch.isfinite(model(batch)).all()


def test_din_ignores_positions_beyond_hist_len():
    model, data, _ = make(DIN, DINConfig(embed_dim=4, dnn_hidden=(8,), use_moon=True), True)
    model.eval()
    b = data.batch(slice(0, 8))
    b.hist_len[:] = 2
    ref = model(b)
    b.hist["hist_item_id"][:, 2:] = 5
    b.hist_emb[:, 2:] = 7.0
    torch.testing.assert_close(model(b), ref)


@pytest.mark.parametrize("model_cls,cfg", CASES)
def test_shape_mismatch_is_a_named_error(model_cls, cfg):
    cfg.use_moon = True
    model, data, _ = make(model_cls, cfg, True)
    b = data.batch(slice(0, 4))
    b.item_emb = b.item_emb[:, :5]
    with pytest.raises(BatchShapeError, match="d=8"):
        model(b)
    b = data.batch(slice(0, 4))
    b.hist["hist_cat"] = b.hist["hist_cat"][:2]
    with pytest.raises(BatchShapeError, match="hist_cat"):
        model(b)
    b = data.batch(slice(0, 4))
    del b.sparse["user_id"]
    with pytest.raises(BatchShapeError, match="user_id"):
        model(b)


def test_config_and_data_errors():
    inputs = tiny_inputs()
    with pytest.raises(ValueError, match="moon_dim is None"):
        DIN(DINConfig(use_moon=True), inputs)
    with pytest.raises(ConfigError):
        DeepFM(DeepFMConfig(sequence_pooling="max"), inputs)
    with pytest.raises(ConfigError, match="unknown_option"):
        DINConfig.from_dict({"unknown_option": 1})
    arrays, table = synthetic_ctr_arrays(tiny_inputs(moon_dim=MOON_DIM), 10, moon_dim=MOON_DIM)
    with pytest.raises(DataError, match="moon_dim=8"):
        CTRData(arrays, tiny_inputs(moon_dim=MOON_DIM))
    bad = table.copy()
    bad[3, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        CTRData(arrays, tiny_inputs(moon_dim=MOON_DIM), moon_table=bad)
    with pytest.raises(DataError, match="hist_cat"):
        CTRData({k: v for k, v in arrays.items() if k != "hist_cat"}, inputs)
    with pytest.raises(DataError, match="max_len"):
        CTRData(arrays, tiny_inputs(max_len=5))


def test_data_gathers_moon_rows_and_shuffles_by_seed():
    inputs = tiny_inputs(moon_dim=MOON_DIM)
    arrays, table = synthetic_ctr_arrays(inputs, 40, moon_dim=MOON_DIM)
    arrays["item_id"][0] = 9999  # unknown item -> zero row
    data = CTRData(arrays, inputs, moon_table=table)
    b = data.batch(np.array([0, 1]))
    assert torch.all(b.item_emb[0] == 0)
    np.testing.assert_array_equal(b.item_emb[1].numpy(), table[arrays["item_id"][1]])
    np.testing.assert_array_equal(b.hist_emb[1].numpy(), table[arrays["hist_item_id"][1]])
    order = lambda s: torch.cat([x.sparse["item_id"] for x in data.batches(16, shuffle=True, seed=s)])
    assert torch.equal(order(3), order(3)) and not torch.equal(order(3), order(4))
    assert sorted(order(3).tolist()) == sorted(arrays["item_id"].tolist())


@pytest.mark.parametrize("model_cls,cfg", CASES)
def test_shared_history_batch_scores_like_the_plain_batch(model_cls, cfg):
    """One user's request: every row has the same history. shared_history=True (what serving
    sets) computes the history side once and must give the same logits."""
    cfg.use_moon = True
    model, data, _ = make(model_cls, cfg, True)
    model.eval()
    b = data.batch(slice(0, 8))
    for t in list(b.hist.values()) + [b.hist_emb, b.hist_len]:
        t[:] = t[3]  # row 3's history for every candidate
    ref = model(b)
    b.shared_history = True
    torch.testing.assert_close(model(b), ref, rtol=1e-6, atol=1e-6)
    b.hist_len[0] = 0
    with pytest.raises(BatchShapeError, match="shared_history"):
        model(b)
