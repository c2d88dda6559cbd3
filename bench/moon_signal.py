"""Does the MOON embedding carry the shop's click signal into DIN? Measured against the truth.

On synthetic shops (every click driven by the user's colour / pattern / category / price taste),
per shop size and seed, on the demo's protocol (global time split 80/10/10, cold = test items
unseen in train / validation; the encoder learns only from the training period):

  * DIN ids only, DIN + MOON (the encoder preset's embedding), DIN + oracle (the true colour,
    pattern and category one-hots as the embedding);
  * reference: a logistic regression on the true attributes x the user's click history;
  * Bayes limit: the generator's own click logit;
  * the diagnosis: linear-probe accuracy and recall@10 of same colour / pattern / category /
    product for the MOON embedding and its frozen towers (EfficientNet-lite0, MiniLM titles),
    and DIN's attention on same-colour history items.

    python bench/moon_signal.py --items 1000,5000 --seeds 0,1,2 --out runs/moon_signal

Prints a table of 3-seed means; every run is appended to <out>/runs.jsonl.
On MovieLens the shuffled-embedding control is `bench/ctr_quality.py --shuffle-embeddings`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ctr_models import CTRData, DIN, DINConfig, Trainer, TrainerConfig, seed_everything  # noqa: E402
from ctr_models.metrics import ctr_metrics  # noqa: E402
from moon_features.data.layout import load_dataset  # noqa: E402
from moon_features.data.movielens_ctr import parquet_table  # noqa: E402
from moon_features.data.synthetic import generate_shop  # noqa: E402
from moon_features.encoder.baselines import efficientnet_image_embeddings, minilm_title_embeddings  # noqa: E402
from moon_features.encoder.embed import embed_catalogue  # noqa: E402
from moon_features.encoder.training import train_encoder  # noqa: E402
from moon_features.lab import signal  # noqa: E402

MODELS = ("din_ids", "din_moon", "din_oracle")


def metrics(shop, probs: np.ndarray) -> dict:
    a, sp = shop.arrays, shop.split
    test = ctr_metrics(a["label"][sp["test"]], probs[sp["test"]], a["user_id"][sp["test"]])
    cold = ctr_metrics(a["label"][sp["cold"]], probs[sp["cold"]])
    return {"auc": test["auc"], "gauc": test["gauc"], "cold_auc": cold["auc"]}


def train_din(shop, table: np.ndarray | None, seed: int, epochs: int):
    inputs = replace(shop.inputs, moon_dim=None if table is None else table.shape[1])
    data = CTRData(shop.arrays, inputs, moon_table=table)
    seed_everything(seed)
    model = DIN(DINConfig(use_moon=table is not None), inputs)  # the defaults: what users run
    trainer = Trainer(TrainerConfig(epochs=epochs, seed=seed, progress=False))
    trainer.fit(model, data.subset(shop.split["train"]), data.subset(shop.split["val"]))
    return model, data, trainer.predict(model, data)


def moon_table(ds, shop, preset: str, seed: int, out: Path) -> tuple[np.ndarray, float]:
    """Train the encoder on the training period only, embed the catalogue; (table, seconds)."""
    before = replace(ds, interactions=ds.interactions[ds.interactions["event_timestamp"] <= shop.cutoff]
                     .reset_index(drop=True))
    t0 = time.time()
    model_dir = train_encoder(before, preset, out / "encoder", seed=seed, resume=False, progress=False)
    seconds = time.time() - t0
    rep = embed_catalogue(model_dir, ds, out / "embedding.parquet", version=1, progress=False)
    return parquet_table(rep.path, int(shop.items.index.max()) + 1), seconds


def tower_tables(ds, n_rows: int) -> dict[str, np.ndarray]:
    """The encoder's own frozen towers, untrained: EfficientNet-lite0 image features, MiniLM titles."""
    items = ds.items.sort_values("item_id")
    ids = items["item_id"].to_numpy()
    image, _ = efficientnet_image_embeddings(items, ds.root, size=64, progress=False)
    text = minilm_title_embeddings(items["title"].tolist(), progress=False)
    out = {}
    for name, z in (("efficientnet", image.numpy()), ("minilm_title", text.numpy())):
        t = np.zeros((n_rows, z.shape[1]), np.float32)
        t[ids] = z
        out[name] = t
    return out


def diagnosis(shop, tables: dict[str, np.ndarray], seed: int) -> dict:
    n_rows = int(shop.items.index.max()) + 1
    codes = signal.attribute_codes(shop.items, n_rows)
    ids = shop.items.index.to_numpy()
    out = {}
    for name, table in tables.items():
        row = {}
        for attr, c in codes.items():
            if attr == "product_id":
                row["product_recall10"] = signal.group_recall(table, c, ids)
            else:
                row[f"{attr}_probe"] = signal.probe_accuracy(table, c, ids, seed)
                row[f"{attr}_recall10"] = signal.attribute_recall(table, c, ids)
        out[name] = row
    return out


def attention_share(model, data, shop) -> dict:
    """DIN's attention on history items of the target's colour vs their share of the history."""
    rows = shop.split["test"]
    weights = np.concatenate([model.attention_weights(data.batch(rows[i: i + 1024])).numpy()
                              for i in range(0, len(rows), 1024)])
    a = shop.arrays
    colour = signal.attribute_codes(shop.items, int(shop.items.index.max()) + 1)["colour"]
    hist = a["hist_item_id"][rows][:, : weights.shape[1]]
    on_same, uniform = signal.attention_on_same(weights, colour[hist], colour[a["item_id"][rows]], a["hist_len"][rows])
    return {"attention_on_same_colour": on_same, "same_colour_share_of_history": uniform}


def run_one(n_items: int, seed: int, args) -> dict:
    out = Path(args.out) / f"shop{n_items}_s{seed}"
    root = out / "data"
    ds = (load_dataset(root) if (root / "dataset.json").exists() else
          generate_shop(root, n_items=n_items, seed=seed, variant_share=args.variant_share, progress=False))
    shop = signal.shop_ctr(ds)
    n_rows = int(shop.items.index.max()) + 1
    moon, enc_seconds = moon_table(ds, shop, args.preset, seed, out)
    oracle = signal.oracle_table(shop.items, n_rows)
    result = {"items": n_items, "seed": seed, "preset": args.preset, "encoder_seconds": round(enc_seconds, 1),
              "rows": {k: int(len(v)) for k, v in shop.split.items()}}
    for name, table in (("din_ids", None), ("din_moon", moon), ("din_oracle", oracle)):
        model, data, probs = train_din(shop, table, seed, args.epochs)
        result[name] = metrics(shop, probs)
        if name == "din_moon":
            result[name].update(attention_share(model, data, shop))
    result["reference"] = metrics(shop, signal.reference_lr(shop))
    result["bayes"] = metrics(shop, signal.bayes_scores(ds, shop))
    result["diagnosis"] = diagnosis(shop, {"moon": moon, **tower_tables(ds, n_rows), "oracle": oracle}, seed)
    return result


def report(runs: list[dict]) -> str:
    lines = []
    for n in sorted({r["items"] for r in runs}):
        rs = [r for r in runs if r["items"] == n]
        lines.append(f"\n## shop of {n:,} items, seeds {sorted(r['seed'] for r in rs)} (mean; min-max)")
        lines.append("| model | AUC | GAUC | cold AUC |\n|---|---|---|---|")
        for name in (*MODELS, "reference", "bayes"):
            cells = []
            for k in ("auc", "gauc", "cold_auc"):
                v = np.array([r[name][k] for r in rs], dtype=float)
                cells.append(f"{np.nanmean(v):.4f} ({np.nanmin(v):.3f}-{np.nanmax(v):.3f})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        att = np.mean([r["din_moon"]["attention_on_same_colour"] for r in rs])
        uni = np.mean([r["din_moon"]["same_colour_share_of_history"] for r in rs])
        lines.append(f"\nDIN + MOON attention on same-colour history items: {att:.3f} (uniform: {uni:.3f})")
        keys = list(rs[0]["diagnosis"]["moon"])
        lines.append("\n| embedding | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
        for emb in rs[0]["diagnosis"]:
            vals = [np.nanmean([r["diagnosis"][emb][k] for r in rs]) for k in keys]
            lines.append(f"| {emb} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
        lines.append(f"\nencoder training: {np.mean([r['encoder_seconds'] for r in rs]):.0f} s mean")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", default="1000,5000", help="shop sizes, comma-separated")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--preset", default="demo", help="encoder preset")
    ap.add_argument("--variant-share", type=float, default=0.3, help="0 = the shop of earlier releases")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default="runs/moon_signal")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    log = Path(args.out) / "runs.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for n in (int(x) for x in args.items.split(",")):
            for seed in (int(x) for x in args.seeds.split(",")):
                t0 = time.time()
                r = run_one(n, seed, args)
                with log.open("a") as f:
                    f.write(json.dumps(r) + "\n")
                m = r["din_moon"]
                print(f"shop {n} seed {seed}: DIN+MOON AUC {m['auc']:.4f} GAUC {m['gauc']:.4f} cold "
                      f"{m['cold_auc']:.4f}; reference {r['reference']['auc']:.4f} / {r['reference']['gauc']:.4f}"
                      f" ({time.time() - t0:.0f} s)", flush=True)
    runs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    wanted = {(int(n), int(s)) for n in args.items.split(",") for s in args.seeds.split(",")}
    print(report([r for r in runs if (r["items"], r["seed"]) in wanted and r["preset"] == args.preset]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
