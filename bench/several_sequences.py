"""A purchase sequence beside the main one: DeepFM or DIN (ids only) with and without it, over seeds (#18 item 4).

Each seed generates a synthetic shop with an event_type column (`data generate --event-types`:
a click becomes a purchase more often where the user likes the item's category), builds two
repositories from it with the embedded default (SQLite), one with the main behaviour sequence
only and one with `features build --sequence purchase=purchase` as well, and trains the same
model (`--model`, DeepFM by default; ids only, no MOON: the purchase sequence is ids only) on each
with the same seed and time split (DeepFM pools the purchase sequence, DIN attends over it). Prints per seed the test AUC / GAUC of both and the difference; the seed changes the shop
and the models.

    nice -n 5 python bench/several_sequences.py --items 1000 --seeds 0,1,2 --workdir runs/bench_sequences
    nice -n 5 python bench/several_sequences.py --model din --items 1000 --seeds 0,1,2 --workdir runs/bench_sequences_din
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # this checkout's code (e.g. from a worktree)
from ctr_models.trainer import TrainerConfig  # noqa: E402
from moon_features.data.layout import load_dataset  # noqa: E402
from moon_features.data.synthetic import generate_shop  # noqa: E402
from moon_features.features import build_feature_repo  # noqa: E402
from moon_features.fields import SequenceSpec  # noqa: E402
from moon_features.store.sources import entity_rows  # noqa: E402
from moon_features.training.train import train_from_feast  # noqa: E402

PURCHASE = SequenceSpec("purchase", ("purchase",))


def one_seed(workdir: Path, items: int, seed: int, epochs: int, model: str) -> dict[str, dict]:
    shop = workdir / f"seed{seed}" / "shop"
    ds = generate_shop(shop, n_items=items, seed=seed, event_types=True, progress=False)
    rows = entity_rows(load_dataset(shop))
    out = {}
    for name, sequences in (("main", ()), ("main+purchase", (PURCHASE,))):
        repo = workdir / f"seed{seed}" / name.replace("+", "_")
        build_feature_repo(shop, repo, max_len=50, online="sqlite", sequences=sequences)
        report = train_from_feast(repo, rows, repo / model, model=model, use_moon=False,
                                  trainer_config=TrainerConfig(epochs=epochs, seed=seed, progress=False))
        out[name] = report.test
    buys = int((ds.interactions["event_type"] == "purchase").sum())
    print(f"seed {seed}: {len(rows):,} rows, {int(ds.interactions['label'].sum()):,} clicks, {buys:,} purchases")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["deepfm", "din"], default="deepfm")
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--workdir", default="runs/bench_sequences")
    args = ap.parse_args()
    workdir = Path(args.workdir)
    results = {int(s): one_seed(workdir, args.items, int(s), args.epochs, args.model) for s in args.seeds.split(",")}
    print(f"\n{'seed':>4}  {'main AUC':>9} {'+purchase':>9} {'diff':>8}  {'main GAUC':>9} {'+purchase':>9} {'diff':>8}")
    diffs = []
    for seed, r in results.items():
        a, b = r["main"], r["main+purchase"]
        diffs.append(b["auc"] - a["auc"])
        print(f"{seed:>4}  {a['auc']:>9.4f} {b['auc']:>9.4f} {diffs[-1]:>+8.4f}  "
              f"{a.get('gauc', float('nan')):>9.4f} {b.get('gauc', float('nan')):>9.4f} "
              f"{b.get('gauc', float('nan')) - a.get('gauc', float('nan')):>+8.4f}")
    print(f"mean AUC difference {sum(diffs) / len(diffs):+.4f} over {len(diffs)} seed(s); "
          f"{sum(d > 0 for d in diffs)} of {len(diffs)} positive")


if __name__ == "__main__":
    main()
