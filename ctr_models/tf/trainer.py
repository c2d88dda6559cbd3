"""Fit / evaluate / predict for the Keras rankers, mirroring ctr_models.trainer.Trainer.

Same TrainerConfig, same FitResult, same protocol: Adam (torch's epsilon 1e-8), one Keras `fit`
epoch at a time through the TFRS RankingModel, the same shuffled mini-batches as the PyTorch
trainer (see data.TFCTRDataset.order), validation AUC computed by ctr_models.metrics on the
predictions (the number the protocol selects epochs by, identical for both backends), early
stopping on it, best weights restored, a checkpoint per epoch.
"""
from __future__ import annotations

import math
import time
import weakref
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from ..data import CTRData
from ..metrics import ctr_metrics
from ..trainer import FitResult, TrainerConfig
from .data import TFCTRDataset
from .ranking import RankingModel
from .runtime import configure_threads


class _EpochProgress(tf.keras.callbacks.Callback):
    """tqdm over one epoch's batches; mean batch loss; a non-finite loss stops with FloatingPointError."""

    def __init__(self, total: int, desc: str, enabled: bool):
        super().__init__()
        self.bar = tqdm(total=total, desc=desc, disable=not enabled, leave=False)
        self.losses: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            self.bar.close()
            raise FloatingPointError(f"loss became {loss} at batch {batch}; lower the learning rate or "
                                     "check the inputs for NaN")
        self.losses.append(loss)
        self.bar.update(1)
        if batch % 20 == 0:
            self.bar.set_postfix(loss=f"{np.mean(self.losses):.4f}", refresh=False)

    def on_train_end(self, logs=None):
        self.bar.close()


def as_dataset(data) -> TFCTRDataset:
    return data if isinstance(data, TFCTRDataset) else TFCTRDataset(data)


class TFTrainer:
    def __init__(self, config: TrainerConfig | None = None):
        self.config = config or TrainerConfig()
        configure_threads(self.config.num_threads)
        # one traced inference function per model, kept off the model so it is not exported with it
        self._logit_fns: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # -- inference ------------------------------------------------------------------------
    def predict(self, model: tf.keras.Model, data: CTRData | TFCTRDataset) -> np.ndarray:
        """Click probabilities [N] in the data's row order."""
        data = as_dataset(data)
        fn = self._logit_fns.get(model)
        if fn is None:
            fn = self._logit_fns[model] = tf.function(lambda f: model(f, training=False), reduce_retracing=True)
        out = [tf.sigmoid(fn(b)).numpy() for b in data.dataset(self.config.eval_batch_size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def evaluate(self, model: tf.keras.Model, data: CTRData | TFCTRDataset) -> dict[str, float]:
        data = as_dataset(data)
        p = self.predict(model, data)
        g = self.config.group_field
        groups = data.column(g) if g and g in data.arrays else None
        return ctr_metrics(data.labels, p, groups)

    # -- training -------------------------------------------------------------------------
    def fit(self, model: tf.keras.Model, train, val, name: str = "model") -> FitResult:
        cfg = self.config
        train, val = as_dataset(train), as_dataset(val)
        if not (train.has_label and val.has_label):
            raise ValueError("fit needs a 'label' array in both train and validation data")
        ranking = RankingModel(model, weight_decay=cfg.weight_decay, embedding_weight_decay=cfg.embedding_weight_decay)
        optimizer = tf.keras.optimizers.Adam(learning_rate=cfg.lr, epsilon=1e-8)
        ranking.compile(optimizer=optimizer)
        ckpt = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
        result = FitResult()
        best_auc, best_weights, since_best = -math.inf, None, 0
        t_start = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            progress = _EpochProgress(train.num_batches(cfg.batch_size), f"{name} epoch {epoch}/{cfg.epochs}",
                                      cfg.progress)
            ds = train.dataset(cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch)
            logs = ranking.fit(ds, epochs=1, verbose=0, callbacks=[progress]).history
            train_s = time.perf_counter() - t0
            val_m = self.evaluate(model, val)
            rec = {"epoch": epoch, "train_loss": float(np.mean(progress.losses)), "train_seconds": train_s,
                   "train_auc": float(logs["auc"][-1]), "train_samples_per_s": len(train) / train_s,
                   **{f"val_{k}": v for k, v in val_m.items() if k != "n"}}
            result.history.append(rec)
            improved = val_m["auc"] > best_auc
            if improved:
                best_auc, since_best = val_m["auc"], 0
                best_weights = [w.copy() for w in model.get_weights()]  # incl. Dice running statistics
                result.best_epoch, result.best_val = epoch, val_m
            else:
                since_best += 1
            if ckpt:
                tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(ckpt / "last"))
                if improved:
                    tf.train.Checkpoint(model=model).write(str(ckpt / "best"))
            if since_best >= cfg.patience:
                break
        if best_weights is not None:
            model.set_weights(best_weights)
        result.seconds = time.perf_counter() - t_start
        if cfg.progress:
            print(result.summary(name, len(train)))
        return result
