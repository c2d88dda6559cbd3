"""The fixed downstream recipe: DIN with and without item embeddings, test AUC / GAUC / cold AUC.

Same model settings and optimiser as bench/ctr_quality.py's `din_id` / `din_moon`; the number of
epochs is the recipe's (test metrics at the best validation-AUC epoch). Nothing about the
recipe changes between the variants of a lab, so metric differences come from the embeddings.
"""
from __future__ import annotations

import time

import numpy as np

from ctr_models import DIN, CTRData, DINConfig, Trainer, TrainerConfig, seed_everything

from .presets import CTRRecipe


def train_din(arrays: dict, inputs, split: dict[str, np.ndarray], recipe: CTRRecipe,
              table: np.ndarray | None = None, progress: bool = True, name: str = "din") -> dict:
    """Train DIN (ids only when `table` is None, else + the embedding table) on split["train"],
    select the epoch on split["val"], report split["test"] and split["cold"]."""
    t0 = time.perf_counter()
    if table is not None:
        inputs = type(inputs)(**{**inputs.__dict__, "moon_dim": table.shape[1]})
    full = CTRData(arrays, inputs, moon_table=table)
    parts = {k: full.subset(v) for k, v in split.items()}
    seed_everything(recipe.seed)
    config = (DINConfig(embed_dim=recipe.embed_dim, use_moon=True, moon_proj_dim=recipe.moon_proj_dim)
              if table is not None else DINConfig(embed_dim=recipe.embed_dim))
    model = DIN(config, inputs)
    trainer = Trainer(TrainerConfig(epochs=recipe.epochs, batch_size=recipe.batch_size,
                                    eval_batch_size=recipe.eval_batch_size, lr=recipe.lr, patience=recipe.epochs,
                                    seed=recipe.seed, progress=progress))
    fit = trainer.fit(model, parts["train"], parts["val"], name=name)
    test = trainer.evaluate(model, parts["test"])
    cold = trainer.evaluate(model, parts["cold"]) if len(parts["cold"]) else {}
    return {"auc": test["auc"], "gauc": test.get("gauc", float("nan")), "logloss": test["logloss"],
            "cold_auc": cold.get("auc", float("nan")), "cold_logloss": cold.get("logloss", float("nan")),
            "best_epoch": fit.best_epoch, "val_auc": fit.best_val.get("auc", float("nan")),
            "n_train": len(parts["train"]), "n_test": len(parts["test"]), "n_cold": len(parts["cold"]),
            "history": fit.history, "ctr_seconds": round(time.perf_counter() - t0, 2)}


def ctr_line(m: dict) -> str:
    return (f"AUC {m['auc']:.4f} GAUC {m['gauc']:.4f} cold AUC {m['cold_auc']:.4f} "
            f"(best epoch {m['best_epoch']})")
