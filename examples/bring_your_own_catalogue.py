"""Bring your own catalogue: the README's command sequence, run in order (in one process).

    python examples/bring_your_own_catalogue.py [--workdir runs/byo] [--items 120] [--seed 0]

Step 1 generates a stand-in for your data: a shop whose item ids are 9-digit article numbers (up
to 949,551,001), whose customer ids are strings with leading zeros ("C0012345"), where 70% of the
items have no title, whose log holds purchases only (no impressions), and where new articles keep
arriving until the log's last day, as in a real shop (so the test period has items nobody has
bought yet: the cold items MOON is for). Replace it with your own
`items.parquet`, `users.parquet`, `interactions.parquet` and `dataset.json` (docs/byo.md).

The rest is the path a new catalogue takes: validate; sample negatives (a purchase log has none);
the ids-only DIN first (it needs no encoder, and `train` prints the time split); the MOON encoder
on the log of `train`'s training period only (`--before auto`: leak-free); embed; `features build` again to pin
the embedding version; materialize every view (embeddings, profiles, histories); DIN + MOON;
evaluate both on the test split; check that online and offline scores agree; score one request
with your own ids. Small defaults keep it to a few minutes on 2 cores (tests/test_byo_example.py
runs it); `bench/byo.py` runs it at a realistic size over several seeds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from moon_features.cli import main as moon_features
from moon_features.data.layout import load_dataset
from moon_features.serving.scorer import CTRScorer
from moon_features.store.repo import open_store


def cli(*argv) -> None:
    """One `moon-features ...` command, exactly as typed in a shell."""
    print(f"\n$ moon-features {' '.join(map(str, argv))}", flush=True)
    code = moon_features([str(a) for a in argv])
    if code != 0:
        sys.exit(f"`moon-features {' '.join(map(str, argv))}` failed (exit {code})")


def metrics(model_dir: Path) -> dict:
    """Test and cold-item test metrics that `train` stored in the artifact."""
    saved = json.loads((model_dir / "config.json").read_text())["metrics"]
    return {"test_auc": saved["test"].get("auc", float("nan")),
            "cold_auc": saved["cold_items_test"].get("auc", float("nan"))}


def run(workdir: Path, items: int = 120, seed: int = 0, epochs: int = 2, encoder_epochs: int | None = 1,
        per_positive: int = 4, text_share: float = 0.3) -> dict:
    orders, shop, repo, models = workdir / "orders", workdir / "shop", workdir / "repo", workdir / "models"

    # 1. your data (here: generated): sparse / string ids, 70% items without text, purchases only,
    #    new items arriving until the end of the log
    cli("data", "generate", "--out", orders, "--items", items, "--seed", seed, "--purchase-only",
        "--sparse-ids", "--no-text-share", round(1 - text_share, 3), "--arrival-span", 1.0)
    cli("data", "validate", orders)
    # 2. negatives: items that exist at the time, by recent purchase rate, never the user's own purchases
    cli("data", "sample-negatives", "--data", orders, "--out", shop, "--per-positive", per_positive,
        "--seed", seed)
    # 3. the feature repo (ids -> dense codes, the id map beside spec.json), every view online
    cli("features", "build", "--data", shop, "--repo", repo)
    cli("materialize", "--repo", repo)
    # 4. the baseline: DIN on ids only (prints the time split)
    cli("train", "--repo", repo, "--data", shop, "--model", "din", "--no-moon", "--epochs", epochs,
        "--seed", seed, "--out", models / "din_ids")
    # 5. the encoder on the log of the training period only (`--before auto` cuts where `train`'s
    #    training split ends, and prints the date), then embeddings of every item
    epochs_flags = ["--pretrain-epochs", encoder_epochs, "--posttrain-epochs", encoder_epochs] if encoder_epochs else []
    cli("encoder", "train", "--data", shop, "--preset", "demo", "--before", "auto", "--seed", seed, *epochs_flags,
        "--quiet", "--no-resume", "--out", workdir / "encoder")
    before = json.loads((workdir / "encoder" / "model" / "training.json").read_text())["before"]
    cli("encoder", "embed", "--data", shop, "--model", workdir / "encoder" / "model", "--version", 1,
        "--quiet", "--out", repo / "data")
    # 6. pin the embedding version, materialize again (the new embedding view; the rest is marked)
    cli("features", "build", "--data", shop, "--repo", repo)
    cli("materialize", "--repo", repo)
    # 7. DIN + MOON, both models evaluated on the test split, online == offline
    cli("train", "--repo", repo, "--data", shop, "--model", "din", "--epochs", epochs, "--seed", seed,
        "--out", models / "din_moon")
    for name in ("din_ids", "din_moon"):
        cli("evaluate", "--repo", repo, "--data", shop, "--model-dir", models / name)
    cli("check-consistency", "--repo", repo, "--model-dir", models / "din_moon", "--rows", 100)
    # 8. one request in your own ids: a customer code and article numbers
    scored = score_one_request(repo, models / "din_moon", load_dataset(shop), seed)
    summary = {"ids": metrics(models / "din_ids"), "moon": metrics(models / "din_moon"),
               "encoder_before": before, "scored": scored}
    print("\n" + "\n".join(f"DIN {'ids only' if k == 'ids' else '+ MOON  '}: test AUC {m['test_auc']:.4f}, "
                           f"cold-item AUC {m['cold_auc']:.4f}" for k, m in summary.items() if k in ("ids", "moon")))
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def score_one_request(repo: Path, model_dir: Path, shop, seed: int, n: int = 10) -> dict:
    """Score n catalogue items for the last buyer through the online store (CTRScorer), in raw ids."""
    user = shop.interactions["user_id"].iloc[-1]
    rng = np.random.default_rng(seed)
    candidates = rng.choice(shop.items["item_id"].to_numpy(), size=min(n, len(shop.items)), replace=False)
    scorer = CTRScorer(open_store(repo), model_dir)
    try:
        res = scorer.score_detailed(user, candidates)
    finally:
        scorer.close()
    top = np.argsort(-res.scores)[:3]
    print(f"user {user}: top items " + ", ".join(f"{res.item_ids[i]} ({res.scores[i]:.3f})" for i in top))
    return {"user": user, "items": res.item_ids.tolist(), "scores": res.scores.tolist(),
            "user_found": bool(res.user_found), "items_found": int(res.item_found.sum()),
            "history_length": int(res.history_length)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/byo")
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2, help="DIN epochs")
    parser.add_argument("--encoder-epochs", type=int, default=1,
                        help="epochs of each encoder stage (0: the demo preset's own, 2 + 2)")
    args = parser.parse_args()
    run(Path(args.workdir), items=args.items, seed=args.seed, epochs=args.epochs, encoder_epochs=args.encoder_epochs)
