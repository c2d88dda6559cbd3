"""CTR quality on MovieLens-100k: ctr_models DIN / DeepFM (id-only and with item embeddings)
against deepctr-torch 0.3.0's DIN / DeepFM trained in the same run on the same features.

Protocol (docs/benchmarks.md, "CTR quality"): label = rating >= 4; split A (global time 80/10/10)
and split B (per user, last 10% test); 252 cold items removed from train / validation and
reported separately; seeds 0, 1, 2; up to 5 epochs of Adam (lr 1e-3, batch 256); test metrics at
the epoch with the best validation AUC; mean [min, max] over seeds.

    python bench/ctr_quality.py --data ../shared/data/movielens-100k --content-embeddings minilm
    python bench/ctr_quality.py --data ../shared/data/movielens-100k --embeddings runs/moon/items.parquet
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ctr_movielens as ml  # noqa: E402

from ctr_models import (DIN, CTRData, DeepFM, DeepFMConfig, DINConfig, Trainer, TrainerConfig,  # noqa: E402
                        seed_everything)
from ctr_models.metrics import ctr_metrics, rela_impr  # noqa: E402
from ctr_models.plots import plot_training_curves  # noqa: E402

PEER = {"peer_din": "deepctr-torch DIN", "peer_deepfm_seq": "deepctr-torch DeepFM, mean-pooled sequences",
        "peer_deepfm": "deepctr-torch DeepFM, no sequences"}
OURS = {"din_id": "ours DIN, id-only", "deepfm_id": "ours DeepFM, id-only (mean-pooled sequences)",
        "din_moon": "ours DIN + item embedding (SimTier + MUSE fusion)",
        "deepfm_moon": "ours DeepFM + item embedding (SimTier)"}
METRICS = ("auc", "gauc", "logloss", "cold_auc", "cold_logloss")


def our_model(name: str, inputs, moon_inputs, dim: int):
    if name == "din_id":
        return DIN(DINConfig(embed_dim=dim), inputs)
    if name == "deepfm_id":
        return DeepFM(DeepFMConfig(embed_dim=dim), inputs)
    if name == "din_moon":
        return DIN(DINConfig(embed_dim=dim, use_moon=True, moon_proj_dim=dim), moon_inputs)
    if name == "deepfm_moon":
        return DeepFM(DeepFMConfig(embed_dim=dim, use_moon=True), moon_inputs)
    raise ValueError(name)


def run_ours(name, parts, seed, args) -> dict:
    seed_everything(seed)
    model = our_model(name, parts["inputs"], parts["moon_inputs"], args.dim)
    data = parts["moon" if name.endswith("_moon") else "id"]
    trainer = Trainer(TrainerConfig(epochs=args.epochs, batch_size=256, eval_batch_size=1024, lr=1e-3,
                                    patience=args.epochs, seed=seed, progress=args.progress))
    fit = trainer.fit(model, data["train"], data["val"], name=name)
    test, cold = trainer.evaluate(model, data["test"]), trainer.evaluate(model, data["cold"])
    return {"auc": test["auc"], "gauc": test["gauc"], "logloss": test["logloss"], "cold_auc": cold["auc"],
            "cold_logloss": cold["logloss"], "best_epoch": fit.best_epoch, "history": fit.history,
            "train_samples_per_s": float(np.mean([r["train_samples_per_s"] for r in fit.history]))}


def run_peer(name, parts, seed, args) -> dict:
    from deepctr_torch.models import DIN as PDIN
    from deepctr_torch.models import DeepFM as PDeepFM

    from moon_features.training.deepctr_adapter import feature_columns, history_feature_list, to_deepctr_input

    inputs = parts["inputs"]
    seqs = name != "peer_deepfm"
    cols = feature_columns(inputs, args.dim, include_sequences=seqs)
    if name == "peer_din":
        model = PDIN(cols, history_feature_list(inputs), seed=seed)
    else:
        model = PDeepFM(cols, cols, seed=seed)
    model.compile("adam", "binary_crossentropy")  # torch Adam, lr 1e-3 by default
    x = {k: to_deepctr_input(parts["id"][k], inputs, include_sequences=seqs) for k in ("train", "val", "test", "cold")}
    y = parts["id"]["train"].labels
    groups = {k: parts["id"][k].column("user_id") for k in x}
    best, history, train_s = None, [], []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # deepctr prints a banner per fit call
            model.fit(x["train"], y, batch_size=256, epochs=1, verbose=0, shuffle=True)
        train_s.append(time.perf_counter() - t0)
        pred = {k: model.predict(x[k], batch_size=1024).ravel() for k in ("val",)}
        val = ctr_metrics(parts["id"]["val"].labels, pred["val"], groups["val"])
        history.append({"epoch": epoch, "val_auc": val["auc"], "val_logloss": val["logloss"]})
        if best is None or val["auc"] > best["val_auc"]:
            t = ctr_metrics(parts["id"]["test"].labels, model.predict(x["test"], 1024).ravel(), groups["test"])
            c = ctr_metrics(parts["id"]["cold"].labels, model.predict(x["cold"], 1024).ravel())
            best = {"val_auc": val["auc"], "auc": t["auc"], "gauc": t["gauc"], "logloss": t["logloss"],
                    "cold_auc": c["auc"], "cold_logloss": c["logloss"], "best_epoch": epoch}
    best["history"] = history
    best["train_samples_per_s"] = float(len(y) / np.mean(train_s))
    if args.progress:
        print(f"{name}: best epoch {best['best_epoch']}, val AUC {best['val_auc']:.4f}")
    return best


def fmt(vals: list[float], digits: int = 4) -> str:
    return f"{np.mean(vals):.{digits}f} [{min(vals):.{digits}f}, {max(vals):.{digits}f}]"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/movielens-100k"))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--embeddings", help="Parquet (item_id, embedding list<float32>), e.g. the MOON encoder's output")
    src.add_argument("--content-embeddings", choices=["minilm"], default=None,
                     help="compute a stand-in content embedding (MiniLM of title + year + genres), cached in --out")
    p.add_argument("--pca", type=int, default=0, help="reduce the item embeddings to this many principal components")
    p.add_argument("--splits", default="A,B")
    p.add_argument("--models", default=",".join([*PEER, *OURS]))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/ctr_quality")
    p.add_argument("--progress", action="store_true", help="per-epoch progress bars and summaries")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    unknown = set(models) - set(PEER) - set(OURS)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {[*PEER, *OURS]}")

    t_start = time.perf_counter()
    mlc = ml.load(args.data)
    a, inputs = mlc.arrays, mlc.inputs
    table, emb_name = None, None
    if any(m.endswith("_moon") for m in models):
        if args.embeddings:
            table, emb_name = ml.parquet_table(args.embeddings, inputs.sparse_field("item_id").vocab_size), args.embeddings
        elif args.content_embeddings == "minilm":
            table = ml.minilm_content_table(mlc.items, inputs.sparse_field("item_id").vocab_size, out)
            emb_name = "MiniLM(title + year + genres) stand-in, 384-d"
        else:
            p.error("models *_moon need --embeddings PATH or --content-embeddings minilm")
    if table is not None and args.pca:
        table = ml.pca_reduce(table, args.pca)
        emb_name += f", PCA-{args.pca} (centred, L2-normalised)"
    moon_inputs = None if table is None else type(inputs)(**{**inputs.__dict__, "moon_dim": table.shape[1]})
    full_id = CTRData(a, inputs)
    full_moon = CTRData(a, moon_inputs, moon_table=table) if table is not None else None

    results: dict = {"embedding": emb_name, "args": vars(args), "runs": {}}
    jobs = [(s, m, seed) for s in args.splits.split(",") for m in models for seed in seeds]
    bar = tqdm(jobs, desc="ctr_quality", unit="run")
    for split, name, seed in bar:
        bar.set_postfix_str(f"{split} {name} seed {seed}")
        idx = ml.make_split(a, split)
        parts = {"inputs": inputs, "moon_inputs": moon_inputs,
                 "id": {k: full_id.subset(v) for k, v in idx.items()},
                 "moon": {k: full_moon.subset(v) for k, v in idx.items()} if full_moon is not None else None}
        r = (run_peer if name in PEER else run_ours)(name, parts, seed, args)
        results["runs"].setdefault(split, {}).setdefault(name, []).append(r)
        with open(out / "runs.jsonl", "a") as f:  # incremental, so a long run's partial results survive
            f.write(json.dumps({"split": split, "model": name, "seed": seed, "embedding": emb_name,
                                **{k: v for k, v in r.items() if k != "history"}}, default=float) + "\n")
        tqdm.write(f"split {split} {name:<16} seed {seed}: AUC {r['auc']:.4f} GAUC {r['gauc']:.4f} "
                   f"logloss {r['logloss']:.4f} cold AUC {r['cold_auc']:.4f} (epoch {r['best_epoch']}, "
                   f"{r['train_samples_per_s']:,.0f} train samples/s)")

    lines = []
    for split, by_model in results["runs"].items():
        lines += [f"\nSplit {split} (embedding for *_moon: {emb_name})",
                  "| model | test AUC | GAUC | logloss | cold-item AUC | cold-item logloss | best epochs | train samples/s | RelaImpr vs peer DIN |",
                  "|---|---|---|---|---|---|---|---|---|"]
        base = np.mean([r["auc"] for r in by_model["peer_din"]]) if "peer_din" in by_model else None
        for name, runs in by_model.items():
            cells = [fmt([r[k] for r in runs]) for k in METRICS]
            ri = f"{rela_impr(np.mean([r['auc'] for r in runs]), base):+.1f}%" if base else "-"
            lines.append(f"| {name}: {(PEER | OURS)[name]} | " + " | ".join(cells) + " | "
                         + ",".join(str(r["best_epoch"]) for r in runs)
                         + f" | {np.mean([r['train_samples_per_s'] for r in runs]):,.0f} | {ri} |")
        plot_training_curves({f"{n} s{seeds[0]}": runs[0]["history"] for n, runs in by_model.items()},
                             out / f"curves_split{split}.png", metrics=("val_auc", "val_logloss"))
    report = "\n".join(lines)
    print(report)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"results_{stamp}.json").write_text(json.dumps(results, indent=1, default=float))
    (out / f"report_{stamp}.md").write_text(report + "\n")
    print(f"ctr_quality: {len(jobs)} runs in {time.perf_counter() - t_start:,.0f} s; "
          f"results in {out}/results_{stamp}.json, curves in {out}/curves_split*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
