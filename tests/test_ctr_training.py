import numpy as np
import pytest
import torch

from ctr_models import DIN, CTRData, DeepFM, DeepFMConfig, DINConfig, Trainer, TrainerConfig, seed_everything
from ctr_models.plots import plot_training_curves
from fixtures.ctr_data import synthetic_ctr_arrays, tiny_inputs


def planted(moon_dim=None, n=3000, seed=0):
    inputs = tiny_inputs(n_users=40, n_items=120, moon_dim=moon_dim)
    arrays, table = synthetic_ctr_arrays(inputs, n, seed=seed, moon_dim=moon_dim or 8)
    data = CTRData(arrays, inputs, moon_table=table if moon_dim else None)
    idx = np.arange(n)
    return inputs, data.subset(idx[:2000]), data.subset(idx[2000:2500]), data.subset(idx[2500:])


@pytest.mark.parametrize("kind", ["din", "deepfm_moon"])
def test_tiny_training_learns_planted_signal(tmp_path, kind):
    torch.set_num_threads(1)
    moon = 8 if kind == "deepfm_moon" else None
    inputs, train, val, test = planted(moon)
    seed_everything(0)
    model = (DIN(DINConfig(embed_dim=8, dnn_hidden=(32,), attention_hidden=(16,)), inputs) if kind == "din"
             else DeepFM(DeepFMConfig(embed_dim=8, use_moon=True, dnn_hidden=(32,)), inputs))
    trainer = Trainer(TrainerConfig(epochs=4, batch_size=64, lr=5e-3, seed=0, progress=False,
                                    checkpoint_dir=str(tmp_path / "ckpt")))
    fit = trainer.fit(model, train, val)
    test_auc = trainer.evaluate(model, test)["auc"]
    assert test_auc > 0.7, f"{kind} test AUC {test_auc:.3f}: the planted history signal was not learned"
    assert 1 <= fit.best_epoch <= len(fit.history) and (tmp_path / "ckpt" / "best.pt").exists()
    assert fit.best_val["auc"] == max(r["val_auc"] for r in fit.history)
    # the best weights are restored: re-evaluating validation gives the best epoch's AUC
    assert trainer.evaluate(model, val)["auc"] == pytest.approx(fit.best_val["auc"])
    png = plot_training_curves({kind: fit.history}, tmp_path / "curves.png")
    assert png.stat().st_size > 1000


def test_same_seed_same_result():
    inputs, train, val, _ = planted(n=2600)
    runs = []
    for _ in range(2):
        seed_everything(3)
        model = DIN(DINConfig(embed_dim=4, dnn_hidden=(8,), attention_hidden=(8,)), inputs)
        fit = Trainer(TrainerConfig(epochs=1, batch_size=128, seed=3, progress=False)).fit(model, train, val)
        runs.append(fit.history[0]["val_auc"])
    assert runs[0] == runs[1]


def test_embedding_weight_decay_only_on_embedding_tables():
    inputs, train, val, _ = planted(n=2600)
    seed_everything(0)
    model = DIN(DINConfig(embed_dim=4, dnn_hidden=(8,), attention_hidden=(8,)), inputs)
    groups = Trainer(TrainerConfig(embedding_weight_decay=0.1, weight_decay=0.01, progress=False)).param_groups(model)
    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    assert {id(p) for p in groups[1]["params"]} == tables and groups[1]["weight_decay"] == pytest.approx(0.11)
    assert not tables & {id(p) for p in groups[0]["params"]} and "weight_decay" not in groups[0]
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
    assert len(Trainer(TrainerConfig(progress=False)).param_groups(model)) == 1

    norms = []
    for wd in (0.0, 1.0):  # a strong L2 on the tables shrinks them; the rest of the model still trains
        seed_everything(0)
        model = DIN(DINConfig(embed_dim=4, dnn_hidden=(8,), attention_hidden=(8,)), inputs)
        trainer = Trainer(TrainerConfig(epochs=1, batch_size=128, seed=0, progress=False, embedding_weight_decay=wd))
        trainer.fit(model, train, val)
        norms.append(float(model.embedding.tables["item_id"].weight.detach().norm()))
    assert norms[1] < norms[0]


class WeightedClicks:
    """A task other than the default: clicks count twice in the loss (what a task swap is for)."""

    def __init__(self):
        self.calls = 0

    def loss(self, logits, batch):
        self.calls += 1
        weight = 1.0 + batch.label
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.label, weight=weight)

    def metrics(self, labels, probs, groups=None):
        from ctr_models.metrics import ctr_metrics

        return ctr_metrics(labels, probs, groups)


def test_task_and_epoch_callbacks_and_thread_count_is_restored():
    inputs, train, val, _ = planted(n=2600)
    seed_everything(0)
    model = DIN(DINConfig(embed_dim=8, dnn_hidden=(16,), attention_hidden=(8,)), inputs)
    seen, task = [], WeightedClicks()
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1  # differs from the process' count, so the check can fail
    threads_in_fit = []
    trainer = Trainer(TrainerConfig(epochs=2, batch_size=128, patience=5, progress=False, num_threads=wanted),
                      task=task, callbacks=[lambda rec, m: seen.append((rec["epoch"], rec["val_auc"])),
                                            lambda rec, m: threads_in_fit.append(torch.get_num_threads())])
    assert torch.get_num_threads() == before  # building a Trainer changes nothing process-wide
    fit = trainer.fit(model, train, val)
    assert task.calls == 2 * train.num_batches(128)  # every training step went through the task
    assert seen == [(r["epoch"], r["val_auc"]) for r in fit.history] and len(seen) == 2
    assert threads_in_fit == [wanted, wanted] and torch.get_num_threads() == before  # set for fit only, then restored
