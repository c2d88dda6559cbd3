"""A generic fit / evaluate / predict loop for any model that maps a CTRBatch to logits [B].

Early stopping on validation AUC (the metric the protocol selects epochs by), the best weights
restored at the end, a checkpoint per epoch, seeded shuffling, tqdm progress and a one-line
summary. The model computes logits; the loss and metrics live in a task (ctr_models.task), as in
TF Recommenders; callbacks see every epoch's record.
"""
from __future__ import annotations

import copy
import math
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import CTRData
from .task import ClickTask


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; call it before building the model so its init is seeded."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainerConfig:
    epochs: int = 5
    batch_size: int = 256
    eval_batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0          # Adam's L2 term on every parameter
    embedding_weight_decay: float = 0.0  # the same L2 term on the nn.Embedding tables only (deepctr-torch's
                                         # l2_reg_embedding r adds r * ||E||^2 to the loss: use 2 * r here)
    patience: int = 2            # epochs without a better validation AUC before stopping
    seed: int = 0
    group_field: str | None = "user_id"  # GAUC groups; None = no GAUC
    checkpoint_dir: str | None = None
    progress: bool = True
    # torch's intra-op thread count is process-wide: None leaves it alone; a number sets it for the
    # duration of fit / predict only and restores the previous count afterwards.
    num_threads: int | None = None


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # one record per epoch
    best_epoch: int = 0
    best_val: dict = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self, name: str, n_train: int) -> str:
        """The one-line end-of-training summary (both backends print it)."""
        n_ep = len(self.history)
        v = self.best_val
        return (f"{name}: best epoch {self.best_epoch}/{n_ep}, val AUC {v.get('auc', float('nan')):.4f}"
                f" GAUC {v.get('gauc', float('nan')):.4f} logloss {v.get('logloss', float('nan')):.4f},"
                f" {self.seconds:.1f} s, {n_ep * n_train / self.seconds:,.0f} samples/s incl. eval")


# A callback sees each epoch's record (epoch, train_loss, val_* metrics, ...) and the model.
EpochCallback = Callable[[dict, nn.Module], None]


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Trainer:
    def __init__(self, config: TrainerConfig | None = None, task: ClickTask | None = None,
                 callbacks: Sequence[EpochCallback] = (), shard: tuple[int, int] | None = None):
        """shard=(rank, world): this process is worker `rank` of `world` data-parallel (DDP)
        workers. Every worker draws the global batches one process would draw (same seed, order
        and batch_size) and trains on its part `rank` of each (np.array_split). Its mean loss is
        weighted by world * part rows / batch rows, so DDP's average of the workers' gradients is
        the whole batch's gradient, a short last batch included: the updates equal one process's
        (with no dropout, and with batch norms over the global batch: layers.global_batch_norm)."""
        self.config = config or TrainerConfig()
        self.task = task or ClickTask()
        self.callbacks = list(callbacks)
        self.shard = shard

    # -- inference ------------------------------------------------------------------------
    def predict(self, model: nn.Module, data: CTRData) -> np.ndarray:
        """Click probabilities [N] in the data's row order."""
        model.eval()
        with _threads(self.config.num_threads), torch.no_grad():
            out = [torch.sigmoid(model(b)) for b in data.batches(self.config.eval_batch_size)]
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)

    def evaluate(self, model: nn.Module, data: CTRData) -> dict[str, float]:
        p = self.predict(model, data)
        g = self.config.group_field
        groups = data.column(g) if g and g in data.arrays else None
        return self.task.metrics(data.labels, p, groups)

    # -- training -------------------------------------------------------------------------
    def param_groups(self, model: nn.Module) -> list[dict]:
        """Adam parameter groups: embedding tables get weight_decay + embedding_weight_decay."""
        cfg = self.config
        if not cfg.embedding_weight_decay:
            return [{"params": [p for p in model.parameters() if p.requires_grad]}]
        emb = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
        params = [p for p in model.parameters() if p.requires_grad]
        return [{"params": [p for p in params if id(p) not in emb]},
                {"params": [p for p in params if id(p) in emb],
                 "weight_decay": cfg.weight_decay + cfg.embedding_weight_decay}]

    def _train_epoch(self, model: nn.Module, opt, train: CTRData, epoch: int, name: str) -> tuple[float, int]:
        """One pass over the shuffled training data: (summed loss, rows seen)."""
        cfg = self.config
        model.train()
        total, seen = 0.0, 0
        bar = tqdm(train.batch_rows(cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch),
                   total=train.num_batches(cfg.batch_size), disable=not cfg.progress,
                   desc=f"{name} epoch {epoch}/{cfg.epochs}", leave=False)
        for rows in bar:
            batch, loss = self._batch_loss(model, train, rows)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{name}: loss became {loss.item()} at epoch {epoch}; "
                                         "lower the learning rate or check the inputs for NaN")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if batch.size:
                total += loss.item() * batch.size / self._weight(batch.size, len(rows))
                seen += batch.size
            bar.set_postfix(loss=f"{total / max(seen, 1):.4f}", refresh=False)
        return total, seen

    def _weight(self, part: int, whole: int) -> float:
        return 1.0 if self.shard is None else part * self.shard[1] / whole

    def _batch_loss(self, model: nn.Module, train: CTRData, rows: np.ndarray) -> tuple:
        """The batch of `rows` this process trains on, and its (weighted) loss."""
        if self.shard is None:
            batch = train.batch(rows)
            return batch, self.task.loss(model(batch), batch)
        rank, world = self.shard
        part = np.array_split(rows, world)[rank]
        batch = train.batch(part)
        logits = model(batch)
        if not len(part):  # a last batch of fewer rows than workers: no loss here, but DDP needs a backward
            return batch, logits.sum()
        return batch, self.task.loss(logits, batch) * self._weight(len(part), len(rows))

    def fit(self, model: nn.Module, train: CTRData, val: CTRData, name: str = "model") -> FitResult:
        cfg = self.config
        if "label" not in train.arrays or "label" not in val.arrays:
            raise ValueError("fit needs a 'label' array in both train and validation data")
        with _threads(cfg.num_threads):
            return self._fit(model, train, val, name)

    def _fit(self, model: nn.Module, train: CTRData, val: CTRData, name: str) -> FitResult:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        opt = torch.optim.Adam(self.param_groups(model), lr=cfg.lr, weight_decay=cfg.weight_decay)
        ckpt = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
        if ckpt:
            ckpt.mkdir(parents=True, exist_ok=True)
        result = FitResult()
        best_auc, best_state, since_best = -math.inf, None, 0
        t_start = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            total, seen = self._train_epoch(model, opt, train, epoch, name)
            train_s = time.perf_counter() - t0
            val_m = self.evaluate(model, val)
            rec = {"epoch": epoch, "train_loss": total / max(seen, 1), "train_seconds": train_s,
                   "train_samples_per_s": seen / train_s if train_s > 0 else float("nan"),
                   **{f"val_{k}": v for k, v in val_m.items() if k != "n"}}
            result.history.append(rec)
            improved = val_m["auc"] > best_auc
            if improved:
                best_auc, since_best = val_m["auc"], 0
                best_state = copy.deepcopy(model.state_dict())
                result.best_epoch, result.best_val = epoch, val_m
            else:
                since_best += 1
            if ckpt:
                torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                            "history": result.history, "trainer": asdict(cfg)}, ckpt / "last.pt")
                if improved:
                    torch.save(best_state, ckpt / "best.pt")
            for callback in self.callbacks:
                callback(rec, model)
            if since_best >= cfg.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        result.seconds = time.perf_counter() - t_start
        if cfg.progress:
            print(result.summary(name, len(train)))
        return result
