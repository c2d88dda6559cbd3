"""TensorFlow parity on MovieLens-100k: ctr_models.tf DIN / DeepFM against the PyTorch ctr_models
versions, trained in the same run on the same rows, splits and mini-batches.

Protocol: the one of bench/ctr_quality.py (its loader, splits and cold items are imported, not
copied): label = rating >= 4; split A (global time 80/10/10) and/or split B (per user); 252 cold
items out of train / validation; seeds 0, 1, 2; up to 5 epochs of Adam (lr 1e-3, batch 256);
test metrics at the epoch with the best validation AUC. Both backends see the same shuffled
mini-batches (TFCTRDataset reproduces CTRData's order). Target: |mean TF AUC - mean torch AUC|
<= 0.01 per model.

    python bench/tf_parity.py --splits A --content-embeddings minilm --pca 64
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import ctr_models.tf as ctf  # noqa: E402  (first: sets TF_USE_LEGACY_KERAS before tensorflow loads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import ctr_quality as cq  # noqa: E402  (MovieLens loader, splits, content tables, torch runs)
from ctr_models import CTRData, TrainerConfig  # noqa: E402

MODELS = {"din_id": "DIN, id-only", "deepfm_id": "DeepFM, id-only (mean-pooled sequences)",
          "din_moon": "DIN + item embedding (SimTier + MUSE fusion)",
          "deepfm_moon": "DeepFM + item embedding (SimTier)"}
TARGET = 0.01


def run_tf(name: str, parts: dict, seed: int, args) -> dict:
    ctf.seed_everything(seed)
    # the torch model's config, so both backends are built from the very same config object
    config = cq.our_model(name, parts["inputs"], parts["moon_inputs"], args.dim).config
    inputs = parts["moon_inputs"] if name.endswith("_moon") else parts["inputs"]
    model = ctf.MODEL_TYPES[config.model_type](config, inputs)
    data = {k: ctf.TFCTRDataset(v) for k, v in parts["moon" if name.endswith("_moon") else "id"].items()}
    trainer = ctf.TFTrainer(TrainerConfig(epochs=args.epochs, batch_size=256, eval_batch_size=1024, lr=1e-3,
                                          patience=args.epochs, seed=seed, progress=args.progress))
    fit = trainer.fit(model, data["train"], data["val"], name=f"tf {name}")
    test, cold = trainer.evaluate(model, data["test"]), trainer.evaluate(model, data["cold"])
    return {"auc": test["auc"], "gauc": test["gauc"], "logloss": test["logloss"], "cold_auc": cold["auc"],
            "cold_logloss": cold["logloss"], "best_epoch": fit.best_epoch, "history": fit.history,
            "train_samples_per_s": float(np.mean([r["train_samples_per_s"] for r in fit.history]))}


def report(runs_file: Path) -> str:
    by: dict = {}
    for line in runs_file.read_text().splitlines():
        r = json.loads(line)
        by.setdefault((r["split"], r["model"]), {}).setdefault(r["backend"], {})[r["seed"]] = r
    lines = ["| split | model | seeds | PyTorch test AUC mean [min, max] | TF test AUC mean [min, max] "
             "| TF - PyTorch (mean) | max per-seed abs diff | logloss torch / TF | cold AUC torch / TF "
             "| best epochs torch / TF | train samples/s torch / TF | within 0.01 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (split, model), b in sorted(by.items()):
        seeds = sorted(set(b.get("torch", {})) & set(b.get("tf", {})))
        if not seeds:
            continue
        t = [b["torch"][s] for s in seeds]
        f = [b["tf"][s] for s in seeds]
        mean = lambda runs, k: float(np.mean([r[k] for r in runs]))  # noqa: E731
        diff = mean(f, "auc") - mean(t, "auc")
        worst = max(abs(a["auc"] - c["auc"]) for a, c in zip(f, t))
        lines.append(
            f"| {split} | {model}: {MODELS[model]} | {','.join(map(str, seeds))} | {cq.fmt([r['auc'] for r in t])} "
            f"| {cq.fmt([r['auc'] for r in f])} | {diff:+.4f} | {worst:.4f} "
            f"| {mean(t, 'logloss'):.4f} / {mean(f, 'logloss'):.4f} | {mean(t, 'cold_auc'):.4f} / {mean(f, 'cold_auc'):.4f} "
            f"| {','.join(str(r['best_epoch']) for r in t)} / {','.join(str(r['best_epoch']) for r in f)} "
            f"| {mean(t, 'train_samples_per_s'):,.0f} / {mean(f, 'train_samples_per_s'):,.0f} "
            f"| {'yes' if abs(diff) <= TARGET else 'NO'} |")
    text = "\n".join(lines)
    print(text)
    (runs_file.parent / "report.md").write_text(text + "\n")
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/movielens-100k"))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--embeddings", help="Parquet (item_id, embedding list<float32>) for the *_moon models")
    src.add_argument("--content-embeddings", choices=["minilm"], default=None,
                     help="the MiniLM stand-in of bench/ctr_quality.py (cached in --cache-dir)")
    p.add_argument("--pca", type=int, default=0)
    p.add_argument("--cache-dir", default="runs/ctr_quality", help="where ctr_quality caches the MiniLM table")
    p.add_argument("--splits", default="A")
    p.add_argument("--models", default="din_id,deepfm_id")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="torch and TF threads (each backend in turn)")
    p.add_argument("--out", default="runs/tf_parity")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    # Both backends train the same recipe: the bench's model configs (cq.our_model), but not its
    # torch-only embedding L2 (TFTrainer has no equivalent and refuses it).
    args.trainer_config = {}
    out = Path(args.out)
    if args.report_only:
        report(out / "runs.jsonl")
        return 0
    models = args.models.split(",")
    unknown = set(models) - set(MODELS)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {list(MODELS)}")
    ctf.configure_threads(args.threads)
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    mlc = cq.load(args.data)
    a, inputs = mlc.arrays, mlc.inputs
    table, emb_name = None, None
    if any(m.endswith("_moon") for m in models):
        n_rows = inputs.sparse_field("item_id").vocab_size
        if args.embeddings:
            table, emb_name = cq.parquet_table(args.embeddings, n_rows), args.embeddings
        elif args.content_embeddings == "minilm":
            table = cq.minilm_content_table(mlc.items, n_rows, Path(args.cache_dir))
            emb_name = "MiniLM(title + year + genres) stand-in, 384-d"
        else:
            p.error("models *_moon need --embeddings PATH or --content-embeddings minilm")
        if args.pca:
            table = cq.pca_reduce(table, args.pca)
            emb_name += f", PCA-{args.pca}"
    moon_inputs = None if table is None else type(inputs)(**{**inputs.__dict__, "moon_dim": table.shape[1]})
    full_id = CTRData(a, inputs)
    full_moon = CTRData(a, moon_inputs, moon_table=table) if table is not None else None

    runs_file = out / "runs.jsonl"
    jobs = [(seed, s, m, backend) for seed in [int(x) for x in args.seeds.split(",")]
            for s in args.splits.split(",") for m in models for backend in ("torch", "tf")]
    bar = tqdm(jobs, desc="tf_parity", unit="run")
    for seed, split, name, backend in bar:
        bar.set_postfix_str(f"{split} {name} {backend} seed {seed}")
        idx = cq.make_split(a, split)
        parts = {"inputs": inputs, "moon_inputs": moon_inputs,
                 "id": {k: full_id.subset(v) for k, v in idx.items()},
                 "moon": {k: full_moon.subset(v) for k, v in idx.items()} if full_moon is not None else None}
        r = (cq.run_ours if backend == "torch" else run_tf)(name, parts, seed, args)
        with open(runs_file, "a") as f:
            f.write(json.dumps({"split": split, "model": name, "seed": seed, "backend": backend,
                                "embedding": emb_name if name.endswith("_moon") else None,
                                "threads": args.threads, **r}, default=float) + "\n")
        tqdm.write(f"split {split} {name:<12} {backend:<5} seed {seed}: AUC {r['auc']:.4f} logloss {r['logloss']:.4f} "
                   f"cold AUC {r['cold_auc']:.4f} (epoch {r['best_epoch']}, {r['train_samples_per_s']:,.0f} samples/s)")
    report(runs_file)
    print(f"tf_parity: {len(jobs)} runs in {time.perf_counter() - t_start:,.0f} s; runs in {runs_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
