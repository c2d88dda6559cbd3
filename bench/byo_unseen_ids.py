"""Does the id embedding of an item never seen in training add noise to its scores? (#19)

For one `bench/byo.py` seed folder (its shop, repo and models), per model: the norm of the item-id
rows that got a gradient (items of the training split) against the others, then every other row
set to exactly zero (what mapping unseen ids to the unknown id 0 would do), and the largest
change of a test score and of the test / cold-item AUC. Rows start at std 1e-4 (FeatureEmbedding)
and a row without a gradient stays there, so the change should be tiny.

    python bench/byo_unseen_ids.py runs/bench_byo_5000/seed0
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # this checkout's code (e.g. from a worktree)
from ctr_models.metrics import auc  # noqa: E402
from ctr_models.trainer import Trainer, TrainerConfig  # noqa: E402
from moon_features.data.layout import load_dataset  # noqa: E402
from moon_features.data.split import time_split  # noqa: E402
from moon_features.store.repo import load_spec, open_store  # noqa: E402
from moon_features.training.retrieval import training_data  # noqa: E402
from moon_features.training.train import load_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("seed_dir", help="a bench/byo.py seed folder: shop/, repo/, models/")
    root = Path(p.parse_args().seed_dir)
    ds = load_dataset(root / "shop")
    item_map = pd.read_parquet(root / "repo/data/id_map_item.parquet")
    user_map = pd.read_parquet(root / "repo/data/id_map_user.parquet")
    item_code, user_code = dict(zip(item_map.raw_id, item_map.code)), dict(zip(user_map.raw_id, user_map.code))
    train, val, test = time_split(ds.interactions)
    trained = np.array(sorted({item_code[i] for i in train["item_id"]}))
    cold = ~test["item_id"].isin(set(train["item_id"]) | set(val["item_id"])).to_numpy()
    rows = test.assign(item_id=test["item_id"].map(item_code), user_id=test["user_id"].map(user_code))
    spec, store = load_spec(root / "repo"), open_store(root / "repo")
    for name in ("din_ids", "din_moon"):
        art, used = load_model(root / "models" / name, spec)
        data = training_data(store, used, rows, use_moon=used.embedding is not None)
        trainer = Trainer(TrainerConfig(progress=False))
        before = trainer.predict(art.model, data)
        table = art.model.embedding.tables["item_id"].weight
        seen = torch.zeros(table.shape[0], dtype=torch.bool)
        seen[torch.as_tensor(trained)] = True
        norms = table.detach().norm(dim=1)[1:]
        with torch.no_grad():
            table[~seen] = 0.0
        after = trainer.predict(art.model, data)
        y = data.labels
        print(f"{name}: item-id row norm, trained median {norms[seen[1:]].median():.4f}, never trained median "
              f"{norms[~seen[1:]].median():.1e} max {norms[~seen[1:]].max():.1e} ({int((~seen[1:]).sum())} rows); "
              f"zeroing them: max |score change| {np.abs(after - before).max():.1e}, test AUC {auc(y, before):.5f} -> "
              f"{auc(y, after):.5f}, cold AUC {auc(y[cold], before[cold]):.5f} -> {auc(y[cold], after[cold]):.5f}")


if __name__ == "__main__":
    main()
