"""Why the BYO bench's cold-item AUC had so few rows, and what the shop and the sampler change (#19).

For each seed, the purchase-only shop of examples/bring_your_own_catalogue.py (same generator
calls as `data generate --purchase-only --sparse-ids --no-text-share 0.7`), with new items
arriving over 0.9 of the log (the generator's default) or until its end (1.0, the example's),
and negatives weighted by a popularity count (the old sampler) or by purchase rate (the new
default). Prints, over `train`'s 80/10/10 time split: items arriving in the validation / test
period, the cold test rows (item never in train / validation) with positives / negatives, the
standard error one cold AUC of 0.6 would have over them (Hanley-McNeil), and the share of
positives among test rows on items under 3 days old, 3-7 days and older (a sampler that rarely
draws new items as negatives makes "new" predict "bought"). No model is trained.

    nice -n 5 python bench/byo_cold_rows.py --items 1000 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # this checkout's code (e.g. from a worktree)
from ctr_models.metrics import auc_standard_error  # noqa: E402
from moon_features.data.negatives import sample_negatives  # noqa: E402
from moon_features.data.shop_variants import drop_text, purchase_only, sparse_ids  # noqa: E402
from moon_features.data.split import time_split  # noqa: E402
from moon_features.data.synthetic import generate_shop  # noqa: E402


def orders(items: int, seed: int, span: float, root: Path):
    ds = generate_shop(root / f"s{seed}_{span}", n_items=items, seed=seed, progress=False, arrival_span=span)
    return drop_text(sparse_ids(purchase_only(ds), seed=seed), 0.7, seed=seed)


def cold_stats(ds) -> dict:
    train, val, test = time_split(ds.interactions)
    first_seen = ds.items.set_index("item_id")["first_seen"]
    t_val, t_test = val["event_timestamp"].min(), test["event_timestamp"].min()
    cold = test[~test["item_id"].isin(set(train["item_id"]) | set(val["item_id"]))]
    n_pos, n_neg = int(cold["label"].sum()), int((cold["label"] == 0).sum())
    age = (test["event_timestamp"].to_numpy() - first_seen.loc[test["item_id"]].to_numpy()) / np.timedelta64(1, "D")
    share = [float(test["label"].to_numpy()[m].mean()) for m in (age < 3, (age >= 3) & (age < 7), age >= 7)]
    return {"arrive_val": int(((first_seen >= t_val) & (first_seen < t_test)).sum()),
            "arrive_test": int((first_seen >= t_test).sum()), "cold_items": cold["item_id"].nunique(),
            "pos": n_pos, "neg": n_neg, "se": auc_standard_error(0.6, n_pos, n_neg) if n_pos and n_neg else np.nan,
            "share": share}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--per-positive", type=int, default=4)
    args = p.parse_args()
    print(f"{args.items} items, {args.per_positive} negatives per purchase; test rows' positive share by item age")
    print(f"{'seed':>4} {'span':>4} {'negatives':>9} | {'new in val':>10} {'new in test':>11} | "
          f"{'cold items':>10} {'cold rows (pos/neg)':>19} {'SE@0.6':>6} | {'<3 d':>5} {'3-7 d':>5} {'>=7 d':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            for span in (0.9, 1.0):
                ds = orders(args.items, seed, span, Path(tmp))
                for popularity in ("count", "rate"):
                    s = cold_stats(sample_negatives(ds, args.per_positive, seed=seed, popularity=popularity))
                    rows = f"{s['pos'] + s['neg']} ({s['pos']}/{s['neg']})"
                    print(f"{seed:>4} {span:>4} {popularity:>9} | {s['arrive_val']:>10} {s['arrive_test']:>11} | "
                          f"{s['cold_items']:>10} {rows:>19} {s['se']:>6.3f} | "
                          + " ".join(f"{v:>5.2f}" for v in s["share"]), flush=True)


if __name__ == "__main__":
    main()
