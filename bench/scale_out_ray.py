"""Ray engines at 1 vs 2 workers, against the local path, on one synthetic shop (the demo's size).

For each worker count W a local Ray is started with W CPUs (and shut down after), and:

  embed         encoder embed --engine ray --workers W (tiny encoder), items/s; output vs local max |diff|
  PIT join      training_data through feature_store.ray.yaml (Ray offline store), rows/s
  materialize   feast materialize through the Ray compute engine into SQLite, rows/s
  training      train --engine ray --workers W (TorchTrainer, DDP), seconds and test AUC

The local path (embed job, DuckDB join, local engine, single-process Trainer) runs once as the
baseline. The machine's load average is printed: on a shared 2-core machine the W = 2 figures are
an upper bound of what contention leaves.

    nice -n 10 python bench/scale_out_ray.py --items 500 --epochs 3
    nice -n 10 python bench/scale_out_ray.py --items 1000 --epochs 3 --auc-seeds 0 1 2   # AUC only
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ctr_models.trainer import TrainerConfig
from moon_features.data.layout import load_dataset
from moon_features.encoder.embed import embed_catalogue
from moon_features.encoder.training import train_encoder
from moon_features.store.definitions import source_path
from moon_features.store.repo import DATA_DIR, apply_repo, materialize_all
from moon_features.store.sources import entity_rows
from moon_features.training.retrieval import training_data
from moon_features.training.train import train_from_feast

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/fixtures: shared with the tests
from fixtures.serving_setup import TINY_DIN  # noqa: E402
from fixtures.store_repo import build_repo  # noqa: E402

TINY_ENCODER = dict(image_size=32, patch_size=8, hidden_size=32, num_heads=2, text_hidden_size=32, text_layers=1,
                    text_heads=2, fusion_layers=1, image_layers=1, max_text_length=16, embedding_dims=[16, 32])
FAST = dict(pretrain_epochs=1, posttrain_epochs=1, batch_size=16, queue_size=32, augment_views=1,
            max_pairs_per_epoch=64)
RAY_YAML = Path(__file__).resolve().parents[1] / "feature_repo" / "feature_store.ray.yaml"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_all(repo, spec, shop, encoder, rows, epochs, workers, engine, tmp) -> dict:
    """One pass of the four jobs; engine 'local' (baseline) or 'ray' with `workers`."""
    ray = engine == "ray"
    out = tmp / f"{engine}{workers}"
    emb, s = timed(lambda: embed_catalogue(encoder, shop, out / "emb.parquet", 1, batch_size=64, progress=False,
                                           engine=engine, workers=workers))
    fig = {"embed_items_per_s": len(shop.items) / s}
    store = apply_repo(repo, repo / "ray.yaml") if ray else apply_repo(repo)
    _, s = timed(lambda: training_data(store, spec, rows))
    fig["pit_rows_per_s"] = len(rows) / s
    n_rows = sum(pq.read_metadata(source_path(repo / DATA_DIR, v.name)).num_rows for v in store.list_feature_views())
    _, s = timed(lambda: materialize_all(store))
    fig["materialize_rows_per_s"] = n_rows / s
    cfg = TrainerConfig(epochs=epochs, batch_size=256, progress=False, seed=0)
    rep, s = timed(lambda: train_from_feast(repo, rows, out / "model", model="din", trainer_config=cfg,
                                            model_overrides=TINY_DIN, engine=engine, workers=workers,
                                            ))  # DuckDB join for every path: the fit is what differs
    fig.update(train_s=s, test_auc=rep.test["auc"])
    fig["embedding"] = np.stack(pq.read_table(out / "emb.parquet").column("embedding").to_numpy(zero_copy_only=False))
    return fig


def auc_seeds(repo, rows, seeds, epochs, workers, tmp) -> None:
    """Test AUC of single-process vs Ray Train (DDP, `workers`) training, per seed, and the gap."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    gaps = []
    try:
        for seed in seeds:
            auc = {}
            for engine in ("local", "ray"):
                cfg = TrainerConfig(epochs=epochs, batch_size=256, progress=False, seed=seed)
                auc[engine] = train_from_feast(repo, rows, tmp / f"auc_{engine}_{seed}", model="din",
                                               trainer_config=cfg, model_overrides=TINY_DIN, engine=engine,
                                               workers=workers).test["auc"]
            gaps.append(auc["ray"] - auc["local"])
            print(f"seed {seed}: single-process AUC {auc['local']:.5f}, Ray Train {workers} workers "
                  f"{auc['ray']:.5f}, gap {gaps[-1]:+.5f}", flush=True)
    finally:
        ray.shutdown()
    print(f"mean gap {np.mean(gaps):+.5f}, max |gap| {np.max(np.abs(gaps)):.5f} over {len(seeds)} seeds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--auc-seeds", type=int, nargs="+", default=None,
                    help="only compare test AUC, single process vs Ray Train with max(--workers), per seed")
    args = ap.parse_args()
    import ray

    tmp = Path(tempfile.mkdtemp(prefix="mf_bench_ray_"))
    repo, spec = build_repo(tmp, online="sqlite", n_items=args.items, dim=32, max_len=20)
    project = apply_repo(repo).config.project
    (repo / "ray.yaml").write_text(RAY_YAML.read_text().replace("project: moon_features", f"project: {project}"))
    shop = load_dataset(tmp / "shop")
    if args.auc_seeds:
        return auc_seeds(repo, entity_rows(shop), args.auc_seeds, args.epochs, max(args.workers), tmp)
    encoder = train_encoder(shop, "demo", tmp / "encoder", seed=0, model_overrides=TINY_ENCODER,
                            schedule_overrides=FAST, progress=False)
    rows = entity_rows(shop)
    results = {"local": run_all(repo, spec, shop, encoder, rows, args.epochs, 1, "local", tmp)}
    for w in args.workers:
        ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False)
        try:
            results[f"ray{w}"] = run_all(repo, spec, shop, encoder, rows, args.epochs, w, "ray", tmp)
        finally:
            ray.shutdown()
    base = results["local"]
    print(f"\n{args.items} items, {len(rows):,} entity rows, {args.epochs} epochs; load average {os.getloadavg()}")
    print(f"{'path':<8}{'embed it/s':>12}{'PIT rows/s':>12}{'mat rows/s':>12}{'train s':>9}{'test AUC':>10}"
          f"{'max|emb diff|':>15}")
    for name, f in results.items():
        diff = float(np.abs(f["embedding"] - base["embedding"]).max())
        print(f"{name:<8}{f['embed_items_per_s']:>12,.0f}{f['pit_rows_per_s']:>12,.0f}"
              f"{f['materialize_rows_per_s']:>12,.0f}{f['train_s']:>9.1f}{f['test_auc']:>10.4f}{diff:>15.2e}")
    if args.json:
        args.json.write_text(json.dumps({k: {m: v for m, v in f.items() if m != "embedding"}
                                         for k, f in results.items()}, indent=2))


if __name__ == "__main__":
    main()
