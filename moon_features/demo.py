"""`moon-features demo`: the whole pipeline on a synthetic shop with the embedded default store.

shop -> MOON encoder (both stages) -> embeddings v1 -> Feast repo (apply, materialize)
     -> DIN with and without MOON from point-in-time features -> online scoring of one request.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ctr_models.metrics import ctr_metrics
from ctr_models.plots import plot_training_curves
from ctr_models.trainer import TrainerConfig

from .data.layout import Dataset
from .data.synthetic import generate_shop
from .encoder.embed import embed_catalogue
from .encoder.training import train_encoder
from .features import build_feature_repo
from .lab.signal import reference_lr, shop_ctr
from .serving.scorer import CTRScorer
from .spec import EmbeddingSpec, embedding_view_name
from .store.bulk_writer import materialize_embeddings
from .store.repo import DATA_DIR, materialize_all, open_store
from .store.sources import entity_rows
from .training.train import train_from_feast

EMBEDDING_VERSION = 1
EMBEDDING_DIM = 96  # the demo encoder's 32 content + 32 taste + 32 trained dimensions


def _step(n: int, text: str) -> None:
    print(f"\n[{n}/6] {text}", flush=True)


def run_demo(workdir: Path, repo: Path, n_items: int = 1000, seed: int = 0, epochs: int = 3) -> dict:
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)

    _step(1, f"synthetic shop: {n_items} items with rendered images, users, a 4-week click log")
    ds = generate_shop(workdir / "shop", n_items=n_items, seed=seed)
    rows = entity_rows(ds)

    _step(2, "MOON encoder, demo preset: image-title pretraining, then co-engagement post-training")
    # before="auto": only the log before the end of the CTR models' training split (no leak)
    encoder_dir = train_encoder(ds, "demo", workdir / "encoder", seed=seed, resume=False, before="auto")
    (repo / DATA_DIR).mkdir(parents=True, exist_ok=True)
    embed_catalogue(encoder_dir, ds, repo / DATA_DIR / f"{embedding_view_name(EMBEDDING_VERSION)}.parquet",
                    version=EMBEDDING_VERSION, dim=EMBEDDING_DIM)

    _step(3, f"feature repo {repo}: spec, offline sources, feast apply, materialize")
    spec, store = build_feature_repo(workdir / "shop", repo,
                                     embedding=EmbeddingSpec(EMBEDDING_VERSION, EMBEDDING_DIM))
    materialize_all(store, views=[v.name for v in store.list_feature_views()
                                  if v.name != spec.embedding.view_name])
    materialize_embeddings(store, EMBEDDING_VERSION)

    _step(4, "DIN from point-in-time features, without and with MOON embeddings")
    cfg = dict(epochs=epochs, seed=seed, progress=True)
    reports = {}
    for use_moon in (False, True):
        name = "din_moon" if use_moon else "din_ids"
        reports[name] = train_from_feast(repo, rows, workdir / "models" / name, use_moon=use_moon,
                                         trainer_config=TrainerConfig(**cfg))
    curves = plot_training_curves({k: r.history for k, r in reports.items()}, workdir / "training_curves.png")

    _step(5, "online scoring: one user, 20 candidates, features from the online store")
    scored = _score_one_request(repo, workdir / "models" / "din_moon", rows, seed)

    _step(6, "summary")
    reference = _reference(ds)
    summary = {
        name: {"test_auc": round(r.test["auc"], 4), "test_gauc": round(r.test.get("gauc", float("nan")), 4),
               "cold_item_auc": round(r.cold_test.get("auc", float("nan")), 4)}
        for name, r in reports.items()}
    summary["reference"] = reference
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["scored"] = scored
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    for name, label in (("din_ids", "DIN ids only"), ("din_moon", "DIN + MOON"),
                        ("reference", "reference LR on the true attributes x history")):
        m = summary[name]
        print(f"{label:47s}: test AUC {m['test_auc']:.4f}  GAUC {m['test_gauc']:.4f}  "
              f"cold items AUC {m['cold_item_auc']:.4f}")
    print(f"training curves: {curves}; summary: {workdir / 'summary.json'}")
    print(f"demo done in {summary['seconds']} s; the repo is applied and materialized: "
          f"`cd {repo} && feast feature-views list`")
    return summary


def _reference(ds: Dataset) -> dict:
    """What a simple model on the shop's hidden truth reaches on the same split (the bar the
    embeddings are measured against; bench/moon_signal.py has the full comparison)."""


    shop = shop_ctr(ds)
    probs, a, test, cold = reference_lr(shop), shop.arrays, shop.split["test"], shop.split["cold"]
    m = ctr_metrics(a["label"][test], probs[test], a["user_id"][test])
    cold_auc = ctr_metrics(a["label"][cold], probs[cold])["auc"] if len(np.unique(a["label"][cold])) > 1 else float("nan")
    return {"test_auc": round(m["auc"], 4), "test_gauc": round(m["gauc"], 4), "cold_item_auc": round(cold_auc, 4)}


def _score_one_request(repo: Path, model_dir: Path, rows, seed: int) -> dict:
    """Score candidates for the most recent user through the online path (CTRScorer)."""
    user = int(rows["user_id"].iloc[-1])
    candidates = np.random.default_rng(seed).choice(rows["item_id"].unique(), 20, replace=False).tolist()
    scorer = CTRScorer(open_store(repo), model_dir)
    scores = np.asarray(scorer.score(user, candidates))
    top = np.argsort(-scores)[:5]
    print(f"user {user}: top candidates " + ", ".join(f"{candidates[i]} ({scores[i]:.3f})" for i in top))
    return {"user": user, "top": [int(candidates[i]) for i in top]}
