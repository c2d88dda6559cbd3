"""Train and evaluate CTR models from a Feast repository.

Rows are split by global time (train on the past, validate and test on the future), the way a
production model is refreshed. Items first seen after the training period are "cold": the
model never saw their id, so only content (MOON) features can tell them apart.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ctr_models.artifact import from_pretrained, save_pretrained
from ctr_models.data import CTRData
from ctr_models.inputs import SequenceGroupsUnsupportedError
from ctr_models.metrics import ctr_metrics
from ctr_models.plots import plot_training_curves
from ctr_models.registry import MODELS
from ctr_models.trainer import Trainer, TrainerConfig, seed_everything

from ..data.split import split_points, time_order, time_split  # noqa: F401  (time_split: public here too)
from ..errors import MoonFeaturesError
from ..spec import FeatureSpec
from ..store.repo import load_spec, open_store
from .ray_train import fit_on_ray
from .retrieval import training_data


class ModelSequencesError(MoonFeaturesError, ValueError):
    """The model reads one behaviour sequence, but the repository's spec has several."""


@dataclass
class TrainReport:
    model_dir: Path
    test: dict
    cold_test: dict
    best_epoch: int
    history: list[dict] = field(default_factory=list)

    cold_reason: str = ""  # why the cold-item AUC is missing (no cold rows, or one class only)

    def line(self) -> str:
        cold = (f"cold items AUC {self.cold_test['auc']:.4f}" if "auc" in self.cold_test
                else f"cold items AUC n/a ({self.cold_reason})")
        if "auc" not in self.test:
            return f"test AUC n/a ({self.cold_reason or 'the test split has one class'}); {cold}"
        return (f"test AUC {self.test['auc']:.4f} GAUC {self.test.get('gauc', float('nan')):.4f} "
                f"logloss {self.test['logloss']:.4f}; {cold}")


def metrics_gap(labels: np.ndarray, what: str) -> str:
    """Why AUC cannot be computed on `labels`, or '' when it can."""
    if len(labels) == 0:
        return (f"no {what} rows: every test item was seen in training" if what == "cold-item"
                else f"the {what} split is empty")
    if len(np.unique(labels)) < 2:
        return (f"all {len(labels):,} {what} rows have label {int(labels[0])}; AUC needs both classes "
                "(a purchase-only log needs negatives: `moon-features data sample-negatives`; if it has them, "
                "too few test rows fall on new items: a longer log or a later test period gives more)")
    return ""


def describe_splits(parts: dict[str, pd.DataFrame]) -> str:
    """One line per split: rows, positives, and the time range (a leak-free split is by time)."""
    lines = []
    for name, rows in parts.items():
        if len(rows):
            t = rows["event_timestamp"]
            lines.append(f"  {name:<5} {len(rows):>9,} rows, {int(rows['label'].sum()):,} positive, "
                         f"{t.min():%Y-%m-%d %H:%M} .. {t.max():%Y-%m-%d %H:%M}")
        else:
            lines.append(f"  {name:<5} 0 rows")
    return "\n".join(lines)


def print_epoch(rec: dict, model) -> None:
    """Trainer callback: the epoch's loss and validation metrics while training runs."""
    val = " ".join(f"{k[4:]} {v:.4f}" for k, v in rec.items() if k.startswith("val_") and isinstance(v, float))
    print(f"  epoch {rec['epoch']}: train loss {rec['train_loss']:.4f}; validation {val or 'n/a'}", flush=True)


def _metrics(trainer: Trainer, model, data: CTRData) -> dict:
    if len(data) == 0 or len(np.unique(data.labels)) < 2:
        return {}
    return trainer.evaluate(model, data)


def train_from_feast(repo: str | Path, entity_rows: pd.DataFrame, out_dir: str | Path, model: str = "din",
                     use_moon: bool = True, trainer_config: TrainerConfig | None = None,
                     model_overrides: dict | None = None, config_file: str | Path | None = None,
                     engine: str = "local", workers: int = 2) -> TrainReport:
    """Retrieve point-in-time features, train with early stopping, save an artifact that records
    the feature spec, the feature service and the embedding versions."""
    if model not in MODELS:
        raise MoonFeaturesError(f"unknown model {model!r}; choose one of {sorted(MODELS)}")
    cfg = trainer_config or TrainerConfig()
    spec = load_spec(repo)
    if use_moon and not spec.embeddings:
        raise MoonFeaturesError(f"{repo} pins no embedding version: run `moon-features encoder embed` and "
                                "`features build` first, or train with --no-moon")
    store = open_store(repo, config_file)
    rows = time_order(entity_rows)
    a, b = split_points(len(rows))
    train_rows, val_rows, test_rows = rows.iloc[:a], rows.iloc[a:b], rows.iloc[b:]
    print("time split:\n" + describe_splits({"train": train_rows, "val": val_rows, "test": test_rows}), flush=True)
    # One point-in-time fetch for all rows, then split: each row's features depend on its own
    # timestamp only, so this equals three fetches, at a third of the joins and table reads.
    data = training_data(store, spec, rows, use_moon=use_moon)
    train, val, test = (data.subset(np.arange(lo, hi)) for lo, hi in ((0, a), (a, b), (b, len(rows))))

    seed_everything(cfg.seed)
    entry = MODELS[model]
    try:
        net = entry.torch_class()(entry.config_class()(use_moon=use_moon, **(model_overrides or {})),
                                  spec.model_inputs(use_moon))
    except SequenceGroupsUnsupportedError as e:  # a model that reads one sequence (DIN and DeepFM read several)
        raise ModelSequencesError(f"{model} on {repo}: {e}") from None
    out_dir = Path(out_dir)
    cfg.checkpoint_dir = cfg.checkpoint_dir or str(out_dir / "checkpoints")
    trainer = Trainer(cfg)
    trainer.callbacks.append(print_epoch)
    name = f"{model}{'+moon' if use_moon else ' ids'}"
    if engine == "ray":  # Ray Train TorchTrainer, DDP over `workers` CPU workers (ray_train.py)

        fit = fit_on_ray(net, train, val, cfg, workers, name, storage=out_dir / "ray")
    else:
        fit = trainer.fit(net, train, val, name=name)

    cold_items = set(train_rows["item_id"]) | set(val_rows["item_id"])
    cold = test.subset(np.flatnonzero(~test_rows["item_id"].isin(cold_items).to_numpy()))
    test_m, cold_m = _metrics(trainer, net, test), _metrics(trainer, net, cold)
    used = spec.for_model(use_moon)
    save_pretrained(net, out_dir, extra={
        "feature_spec": used.to_dict(),
        "feature_service": used.feature_service_name,
        # one view: its version (as artifacts before several views); all of them in embedding_versions
        "embedding_version": used.embedding_versions[0] if len(used.embeddings) == 1 else None,
        "embedding_versions": list(used.embedding_versions),
    }, metrics={"test": test_m, "cold_items_test": cold_m, "best_epoch": fit.best_epoch})
    plot_training_curves({name: fit.history}, out_dir / "training_curves.png")
    (out_dir / "history.json").write_text(json.dumps(fit.history, indent=2))
    report = TrainReport(out_dir, test_m, cold_m, fit.best_epoch, fit.history,
                         cold_reason=metrics_gap(cold.labels, "cold-item") or metrics_gap(test.labels, "test"))
    print(f"{name}: {report.line()} -> {out_dir}")
    return report


def load_model(model_dir: str | Path, spec: FeatureSpec | None = None):
    """Load an artifact; with `spec` (the store's), refuse one trained on different features."""
    art = from_pretrained(model_dir)
    trained = FeatureSpec.from_dict(art.extra["feature_spec"])
    if spec is not None:
        trained.check_compatible(spec.for_model(bool(trained.embeddings)), what="feature repo")
    return art, trained


def evaluate_from_feast(repo: str | Path, entity_rows: pd.DataFrame, model_dir: str | Path,
                        config_file: str | Path | None = None) -> dict:
    """Metrics of a saved model on entity rows, features read point-in-time from the repo."""
    spec = load_spec(repo)
    art, trained = load_model(model_dir, spec)
    data = training_data(open_store(repo, config_file), trained, entity_rows,
                         use_moon=bool(trained.embeddings))
    probs = Trainer(TrainerConfig(progress=False)).predict(art.model, data)
    return ctr_metrics(data.labels, probs, data.column("user_id"))
