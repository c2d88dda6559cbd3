"""TF DIN / DeepFM learn a planted signal through the TFRS wrapper and the TF trainer, and an
exported SavedModel reloads to identical predictions, also through the serving adapter."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.tf
ctf = pytest.importorskip("ctr_models.tf", exc_type=ImportError)
ctf.configure_threads(1)

import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

from ctr_models import CTRData, DeepFMConfig, DINConfig, TrainerConfig  # noqa: E402
from ctr_models.artifact import ArtifactError, SpecMismatchError  # noqa: E402
from ctr_models.batch import BatchShapeError  # noqa: E402
from fixtures.ctr_data import synthetic_ctr_arrays, tiny_inputs  # noqa: E402
from ctr_models.tf import serving  # noqa: E402
from ctr_models.tf.export import serving_function  # noqa: E402

MODELS = {"din": (ctf.DIN, DINConfig(embed_dim=8, use_moon=True, moon_proj_dim=8)),
          "deepfm": (ctf.DeepFM, DeepFMConfig(embed_dim=8, use_moon=True))}


@pytest.fixture(scope="module")
def splits():
    inputs = tiny_inputs(moon_dim=8)
    arrays, table = synthetic_ctr_arrays(inputs, 4000, seed=0, moon_dim=8)
    data = ctf.TFCTRDataset(CTRData(arrays, inputs, moon_table=table))
    return inputs, data.subset(np.arange(3000)), data.subset(np.arange(3000, 4000))


@pytest.fixture(scope="module")
def trained(splits):
    inputs, train, val = splits
    trainer = ctf.TFTrainer(TrainerConfig(epochs=3, batch_size=128, lr=3e-3, seed=0, progress=False))
    out = {}
    for name, (cls, config) in MODELS.items():
        ctf.seed_everything(0)
        model = cls(config, inputs)
        fit = trainer.fit(model, train, val, name=name)
        out[name] = (model, fit)
    return trainer, out


@pytest.mark.parametrize("name", list(MODELS))
def test_learns_the_planted_signal(trained, splits, name):
    trainer, models = trained
    model, fit = models[name]
    assert fit.best_val["auc"] > 0.6, fit.history
    assert len(fit.history) == 3 and all(np.isfinite(r["train_loss"]) for r in fit.history)
    assert 0 < fit.history[-1]["train_auc"] <= 1  # the TFRS Ranking task's AUC metric
    # best weights are restored: evaluating again gives the recorded best validation AUC
    assert trainer.evaluate(model, splits[2])["auc"] == pytest.approx(fit.best_val["auc"], abs=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_savedmodel_round_trip_gives_identical_predictions(trained, splits, tmp_path, name):
    trainer, models = trained
    model, fit = models[name]
    inputs, _, val = splits
    path = ctf.save_tf_artifact(model, tmp_path / name, extra={"feature_service": "svc_v1"}, metrics=fit.best_val)
    meta = json.loads((path / "config.json").read_text())
    assert meta["backend"] == "tensorflow" and meta["model_type"] == name
    feats = {k: v.numpy() for k, v in next(iter(val.dataset(len(val)))).items()}
    signature = serving_function(model)  # the in-memory signature, before any reload
    expected = signature(**{k: tf.constant(v) for k, v in feats.items() if k != "label"})["probs"].numpy()
    # graph vs tf.function predict may differ in the last bit (kernel choice), not more
    np.testing.assert_allclose(trainer.predict(model, val), expected, rtol=1e-5, atol=1e-7)

    art = ctf.load_tf_artifact(path, inputs=inputs)
    np.testing.assert_array_equal(art.predict(feats), expected)  # reloaded SavedModel: bit-identical
    rebuilt = ctf.load_keras_model(path)  # Keras model from config + checkpoint (to fine-tune); eager call
    probs = tf.sigmoid(rebuilt({k: v for k, v in feats.items() if k != "label"}, training=False)).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)

    # the serving adapter: a CTRBatch in, torch logits out, as CTRScorer calls a torch model
    assert serving.is_tf_artifact(path)
    loaded = serving.load_artifact(path)
    assert loaded.extra == {"feature_service": "svc_v1"} and loaded.model.config.model_type == name
    weights = loaded.model.state_dict()  # what CTRScorer hashes into a model version
    assert len(weights) == len(model.variables) and all(isinstance(w, torch.Tensor) for w in weights.values())
    batch = CTRData({k: v for k, v in feats.items() if k not in ("item_emb", "hist_emb")}, inputs,
                    moon_table=val.moon_table).batch(slice(0, 50))
    np.testing.assert_allclose(torch.sigmoid(loaded.model.eval()(batch)).numpy(), expected[:50], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(serving.predict(loaded, batch), expected[:50], rtol=1e-5, atol=1e-7)

    with pytest.raises(SpecMismatchError, match="moon_dim"):
        ctf.load_tf_artifact(path, inputs=tiny_inputs(moon_dim=4))
    feats.pop("item_emb")
    with pytest.raises(BatchShapeError, match="item_emb"):
        art.predict(feats)


def test_a_torch_artifact_is_not_loaded_as_tf(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"format_version": 1, "model_type": "din"}))
    assert not serving.is_tf_artifact(tmp_path)
    with pytest.raises(ArtifactError, match="from_pretrained"):
        ctf.load_tf_artifact(tmp_path)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("decay", [{"weight_decay": 1e-2}, {"weight_decay": 1e-3, "embedding_weight_decay": 5e-2}],
                         ids=["all", "embeddings"])
def test_weight_decay_equals_torch_adams(name, decay):
    """TFTrainer's weight decay is torch Adam's: an L2 term in the gradient (rate * w; embedding
    tables with embedding_weight_decay on top), over the same set of weights. Checked on the
    gradients Adam receives: Adam's first steps turn float noise in tiny gradients into +-lr."""
    from ctr_models import DIN, DeepFM
    from ctr_models.trainer import Trainer

    cls, config = MODELS[name]
    inputs = tiny_inputs(moon_dim=8)
    arrays, table = synthetic_ctr_arrays(inputs, 200, seed=2, moon_dim=8)
    data = CTRData(arrays, inputs, moon_table=table)
    cfg = TrainerConfig(**decay)
    torch.manual_seed(0)
    tm = {"din": DIN, "deepfm": DeepFM}[name](config, inputs)
    with torch.no_grad():
        for p in tm.parameters():
            p.add_(0.1 * torch.randn_like(p))
    batch = data.batch(slice(0, 64))
    feats = {k: tf.constant(v) for k, v in ctf.to_features(batch, inputs).items()}
    km = cls(config, inputs)
    km(feats, training=False)
    km.load_torch(tm)

    tm.train()
    torch.nn.functional.binary_cross_entropy_with_logits(tm(batch), batch.label).backward()
    rate = {}  # id(param) -> decay rate, from the torch trainer's own parameter groups
    for group in Trainer(cfg).param_groups(tm):
        for p in group["params"]:
            rate[id(p)] = group.get("weight_decay", cfg.weight_decay)
    ranking = ctf.RankingModel(km, weight_decay=cfg.weight_decay, embedding_weight_decay=cfg.embedding_weight_decay)
    with tf.GradientTape() as tape:
        penalty = tf.add_n(ranking.losses)
        total = ranking.compute_loss(feats, training=True) + penalty
    want = sum(0.5 * rate[id(p)] * float((p.detach() ** 2).sum()) for p in tm.parameters())
    assert float(penalty) == pytest.approx(want, rel=1e-5)  # the same weights, at the same rates
    tables = [(km.embedding.tables[n], t.weight) for n, t in tm.embedding.tables.items()]
    if name == "deepfm":
        tables += [(km.linear[n], t.weight) for n, t in tm.linear.items()]
    grads = tape.gradient(total, [v for v, _ in tables])
    for (v, p), g in zip(tables, grads):
        expected = p.grad.numpy() + rate[id(p)] * p.detach().numpy()
        np.testing.assert_allclose(tf.convert_to_tensor(g).numpy(), expected, rtol=1e-4, atol=1e-6)
    assert rate[id(tables[0][1])] == cfg.weight_decay + cfg.embedding_weight_decay
