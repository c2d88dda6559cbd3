"""The Keras layers and models compute what the PyTorch ones compute: same weights, same batch,
same logits (inference and training mode), same Dice running statistics, decomposed == naive."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf
ctf = pytest.importorskip("ctr_models.tf", exc_type=ImportError)
ctf.configure_threads(1)

import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

from ctr_models import CTRData, DeepFM, DeepFMConfig, DIN, DINConfig  # noqa: E402
from ctr_models.batch import BatchShapeError  # noqa: E402
from fixtures.ctr_data import synthetic_ctr_arrays, tiny_inputs  # noqa: E402
from ctr_models.tf.layers import TargetAttention, length_mask  # noqa: E402

CASES = [
    ("din_id", DIN, ctf.DIN, DINConfig(embed_dim=8), None, ()),
    ("din_paper_raw_weights", DIN, ctf.DIN, DINConfig(embed_dim=8, attention_norm="none", interest_product=False), None, ()),
    ("din_moon", DIN, ctf.DIN, DINConfig(embed_dim=8, use_moon=True, moon_proj_dim=8), 6, ()),
    ("din_softmax_prelu", DIN, ctf.DIN,
     DINConfig(embed_dim=8, use_moon=True, attention_norm="softmax", attention_act="prelu", dnn_act="prelu"), 6, ()),
    ("deepfm_id", DeepFM, ctf.DeepFM, DeepFMConfig(embed_dim=8), None, ("price",)),
    ("deepfm_moon", DeepFM, ctf.DeepFM, DeepFMConfig(embed_dim=8, use_moon=True), 6, ("price",)),
]


def pair(torch_cls, tf_cls, config, moon_dim, dense, n=300):
    inputs = tiny_inputs(moon_dim=moon_dim, dense=dense)
    arrays, table = synthetic_ctr_arrays(inputs, n, seed=1, moon_dim=moon_dim or 6)
    data = CTRData(arrays, inputs, moon_table=table if moon_dim else None)
    torch.manual_seed(0)
    tm = torch_cls(config, inputs)
    with torch.no_grad():  # move every weight off its init so the comparison covers them all
        for p in tm.parameters():
            p.add_(0.1 * torch.randn_like(p))
    km = tf_cls(config, inputs)
    ds = ctf.TFCTRDataset(data)
    km(next(iter(ds.dataset(8))), training=False)
    km.load_torch(tm)
    return tm, km, data, ds


@pytest.mark.parametrize("name,torch_cls,tf_cls,config,moon_dim,dense", CASES, ids=[c[0] for c in CASES])
def test_same_weights_give_the_same_logits(name, torch_cls, tf_cls, config, moon_dim, dense):
    tm, km, data, ds = pair(torch_cls, tf_cls, config, moon_dim, dense)
    feats = next(iter(ds.dataset(128)))
    tb = data.batch(slice(0, 128))
    assert int((tb.hist_len == 0).sum()) > 0  # empty histories are part of the comparison
    tm.eval()
    with torch.no_grad():
        expected = tm(tb).numpy()
    np.testing.assert_allclose(km(feats, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)
    # training mode: Dice uses batch statistics (packed valid positions only in the attention)
    tm.train()
    with torch.no_grad():
        expected = tm(tb).numpy()
    np.testing.assert_allclose(km(feats, training=True).numpy(), expected, rtol=1e-4, atol=1e-4)
    # ... and both updated their running statistics the same way
    t_dice = [m for m in tm.modules() if type(m).__name__ == "Dice"]
    k_dice = [l for l in km.submodules if type(l).__name__ == "Dice"]
    assert len(t_dice) == len(k_dice)
    for t, k in zip(sorted(t_dice, key=lambda m: m.alpha.numel()), sorted(k_dice, key=lambda l: l.num_features)):
        np.testing.assert_allclose(k.running_var.numpy(), t.bn.running_var.numpy(), rtol=1e-4, atol=1e-6)


def test_decomposed_attention_equals_the_naive_first_layer():
    att = TargetAttention(6, (8, 4), "dice")
    rng = np.random.default_rng(0)
    q = tf.constant(rng.normal(size=(5, 6)), tf.float32)
    keys = tf.constant(rng.normal(size=(5, 7, 6)), tf.float32)
    mask = length_mask(tf.constant([0, 1, 3, 7, 2], tf.int64), 7)
    with tf.GradientTape(persistent=True) as tape:
        fast = att(q, keys, mask, training=True)
        slow = att(q, keys, mask, training=True, naive=True)
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(fast, att.first_kernel).numpy(),
                               tape.gradient(slow, att.first_kernel).numpy(), rtol=1e-4, atol=1e-6)
    assert np.all(fast.numpy()[0] == 0)  # an empty history pools to zeros


def test_unknown_ids_read_the_padding_row_and_missing_moon_is_a_named_error():
    _, km, data, ds = pair(DIN, ctf.DIN, DINConfig(embed_dim=8, use_moon=True), 6, ())
    feats = dict(next(iter(ds.dataset(16))))
    base = km(feats, training=False).numpy()
    feats["user_id"] = tf.fill([16], tf.constant(10**6, tf.int64))
    zero = dict(feats, user_id=tf.zeros([16], tf.int64))
    np.testing.assert_allclose(km(feats, training=False).numpy(), km(zero, training=False).numpy())
    assert np.isfinite(base).all()
    feats.pop("hist_emb")
    with pytest.raises(BatchShapeError, match="hist_emb"):
        km(feats, training=False)


def shared_batch(data, rows: slice, source_row: int):
    """Rows `rows` of data, every row given row `source_row`'s history: one request's candidates."""
    import dataclasses

    tb = data.batch(rows)
    src = data.batch(slice(source_row, source_row + 1))
    n = tb.size
    hist = {k: v.expand(n, -1).clone() for k, v in src.hist.items()}
    hist_emb = None if src.hist_emb is None else src.hist_emb.expand(n, -1, -1).clone()
    return dataclasses.replace(tb, hist=hist, hist_len=src.hist_len.expand(n).clone(), hist_emb=hist_emb,
                               shared_history=True)


@pytest.mark.parametrize("name,torch_cls,tf_cls,config,moon_dim,dense", CASES, ids=[c[0] for c in CASES])
def test_shared_history_path_equals_torch_and_the_general_path(name, torch_cls, tf_cls, config, moon_dim, dense):
    """One request's candidates share the user's history: torch's shared path (CTRBatch.shared_history)
    and the Keras one (call(..., shared_history=True)) give the same logits, in inference and
    training mode, and equal the general path over the repeated history."""
    tm, km, data, _ = pair(torch_cls, tf_cls, config, moon_dim, dense)
    lens = data.column("hist_len")
    for source in (int(np.argmax(lens)), int(np.flatnonzero(lens == 0)[0])):  # a full and an empty history
        tb = shared_batch(data, slice(0, 40), source)
        feats = {k: tf.constant(v) for k, v in ctf.to_features(tb, data.inputs).items()}
        for training in (False, True):
            tm.train(training)
            with torch.no_grad():
                expected = tm(tb).numpy()
            shared = km(feats, training=training, shared_history=True).numpy()
            np.testing.assert_allclose(shared, expected, rtol=1e-4, atol=1e-4)
            if not training:  # the general path over the same rows (training mode would update Dice twice)
                np.testing.assert_allclose(km(feats, training=False).numpy(), shared, rtol=1e-5, atol=1e-5)


def test_shared_attention_equals_the_general_path_with_gradients():
    att = TargetAttention(6, (8, 4), "dice", normalization="softmax")
    rng = np.random.default_rng(1)
    q = tf.constant(rng.normal(size=(5, 6)), tf.float32)
    one = tf.constant(rng.normal(size=(1, 7, 6)), tf.float32)
    mask = length_mask(tf.constant([4], tf.int64), 7)
    bias = tf.constant(rng.normal(size=(5, 7)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        fast = att(q, one, mask, bias, training=True, shared=True)
        slow = att(q, tf.repeat(one, 5, axis=0), tf.repeat(mask, 5, axis=0), bias, training=True)
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(fast, att.first_kernel).numpy(),
                               tape.gradient(slow, att.first_kernel).numpy(), rtol=1e-4, atol=1e-6)
    empty = att(q, one, length_mask(tf.constant([0], tf.int64), 7), shared=True)
    assert np.all(empty.numpy() == 0)


@pytest.mark.parametrize("name", ["din_moon", "deepfm_moon"])
def test_savedmodel_request_signature_equals_the_general_one_and_torch(name, tmp_path):
    """The exported "score_request" signature (one request: row 0's history for every candidate)
    gives the general "serving_default" scores on the repeated history, with the history sent as
    B rows or as one, and torch's shared path; TFArtifact routes a shared_history CTRBatch to it."""
    _, torch_cls, tf_cls, config, moon_dim, dense = next(c for c in CASES if c[0] == name)
    tm, km, data, _ = pair(torch_cls, tf_cls, config, moon_dim, dense)
    tb = shared_batch(data, slice(0, 40), int(np.argmax(data.column("hist_len"))))
    tm.eval()
    with torch.no_grad():
        expected = tm(tb).numpy()
    path = ctf.save_tf_artifact(km, tmp_path / name)
    loaded = tf.saved_model.load(str(path / "saved_model"))  # as TF Serving would, without this package
    feats = {k: tf.constant(v) for k, v in ctf.to_features(tb, data.inputs).items() if k != "label"}
    general = loaded.signatures["serving_default"](**feats)["logits"].numpy()
    request = loaded.signatures["score_request"](**feats)["logits"].numpy()
    once = dict(feats, **ctf.features.history_of_first_row(feats, data.inputs))  # history as 1 row
    request_once = loaded.signatures["score_request"](**once)["logits"].numpy()
    assert once["hist_emb"].shape[0] == 1 and request_once.shape == (40,) and np.std(expected) > 1e-3
    np.testing.assert_allclose(request, general, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(request_once, general, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(request_once, expected, rtol=1e-4, atol=1e-4)
    art = ctf.load_tf_artifact(path)
    assert art.request_signature is not None
    np.testing.assert_allclose(art.logits(tb), request_once, rtol=1e-6, atol=1e-6)
