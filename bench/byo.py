"""Bring your own catalogue: DIN + MOON against DIN on ids only, over seeds (issue #19).

Each seed runs examples/bring_your_own_catalogue.py end to end: a generated purchase-only shop
(9-digit article ids, string customer ids, 70% of items without a title), negatives sampled from
the items that exist at the time by recent popularity, the MOON encoder on the log before the
validation period, both DINs trained and measured on the same time split. Prints per seed the test
AUC and the cold-item AUC (test rows whose item never appeared in train / validation) of both
models and the difference, and the number of cold-item test rows (a cold AUC over a few dozen rows
is noise: the table gives its positives / negatives and the standard error of one cold AUC,
Hanley-McNeil, for the ids-only model); the seed changes the shop, the negatives, the encoder and
the models.

    nice -n 5 python bench/byo.py --items 1000 --seeds 0,1,2 --epochs 2 --workdir runs/bench_byo_1000
    # or one process per seed, then the table:
    for s in 0 1 2; do OMP_NUM_THREADS=1 nice -n 5 python bench/byo.py --items 1000 --seeds $s \
        --workdir runs/bench_byo_1000 & done; wait; python bench/byo.py --items 1000 --workdir runs/bench_byo_1000

A seed whose <workdir>/seed<N>/summary.json exists is read, not run again: seeds can run as
parallel processes (one --seeds N each) and a last call prints the table of all of them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this checkout's code, not whatever the venv's editable install points at (e.g. from a worktree)
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]
from bring_your_own_catalogue import run  # noqa: E402
from ctr_models.metrics import auc_standard_error  # noqa: E402
from moon_features.data.layout import load_dataset  # noqa: E402
from moon_features.data.split import time_split  # noqa: E402


def cold_rows(shop: Path) -> tuple[int, int]:
    """(positives, negatives) among the test rows whose item never appears in train / validation:
    the rows `train` measures the cold-item AUC on (its time split of the same log)."""
    train, val, test = time_split(load_dataset(shop).interactions)
    cold = test[~test["item_id"].isin(set(train["item_id"]) | set(val["item_id"]))]
    return int(cold["label"].sum()), int((cold["label"] == 0).sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=2, help="DIN epochs (best validation epoch kept)")
    p.add_argument("--encoder-epochs", type=int, default=0, help="epochs of each encoder stage (0: the preset's)")
    p.add_argument("--per-positive", type=int, default=4)
    p.add_argument("--workdir", default="runs/bench_byo")
    args = p.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        workdir, t0 = Path(args.workdir) / f"seed{seed}", time.perf_counter()
        done = workdir / "summary.json"  # a seed already run (e.g. seeds run as parallel processes)
        if done.exists():
            s, seconds = json.loads(done.read_text()), json.loads(done.read_text()).get("seconds", 0)
        else:
            s = run(workdir, items=args.items, seed=seed, epochs=args.epochs, encoder_epochs=args.encoder_epochs,
                    per_positive=args.per_positive)
            seconds = round(time.perf_counter() - t0)
            done.write_text(json.dumps({**s, "seconds": seconds}, indent=2, default=str))
        cold = json.loads((workdir / "models" / "din_ids" / "config.json").read_text())["metrics"]["cold_items_test"]
        n_pos, n_neg = cold_rows(workdir / "shop")
        if n_pos + n_neg != int(cold.get("n", 0)):
            raise SystemExit(f"seed {seed}: {n_pos + n_neg} cold rows here, {cold.get('n')} in train's metrics")
        se = auc_standard_error(s["ids"]["cold_auc"], n_pos, n_neg) if n_pos and n_neg else float("nan")
        rows.append({"seed": seed, "ids": s["ids"], "moon": s["moon"], "seconds": seconds,
                     "cold_rows": n_pos + n_neg, "cold_pos": n_pos, "cold_neg": n_neg, "cold_se": se})
    print(f"\nBYO bench: {args.items} items, purchase-only, sparse ids, 70% without text, new items arriving "
          f"until the log's end, {args.per_positive} negatives per purchase (by purchase rate), DIN {args.epochs} "
          f"epochs, encoder demo preset ({args.encoder_epochs or 'its own'} epochs per stage)")
    print(f"{'seed':>4} | {'test AUC ids':>12} {'+ MOON':>8} {'diff':>8} | {'cold AUC ids':>12} {'+ MOON':>8} "
          f"{'diff':>8} {'SE':>6} {'cold rows (pos/neg)':>19} | {'s':>5}")
    for r in rows:
        i, m = r["ids"], r["moon"]
        n = f"{r['cold_rows']} ({r['cold_pos']}/{r['cold_neg']})"
        print(f"{r['seed']:>4} | {i['test_auc']:>12.4f} {m['test_auc']:>8.4f} {m['test_auc'] - i['test_auc']:>+8.4f} | "
              f"{i['cold_auc']:>12.4f} {m['cold_auc']:>8.4f} {m['cold_auc'] - i['cold_auc']:>+8.4f} "
              f"{r['cold_se']:>6.3f} {n:>19} | {r['seconds']:>5}")
    print("SE: the standard error of one cold AUC over that many positives / negatives (Hanley-McNeil, at the "
          "ids-only AUC); a cold difference inside about 2 SE is not a measured difference")
    wins = sum(r["moon"]["test_auc"] > r["ids"]["test_auc"] and r["moon"]["cold_auc"] > r["ids"]["cold_auc"]
               for r in rows)
    print(f"+ MOON beats ids-only on both test and cold AUC in {wins} of {len(rows)} seeds")
    (Path(args.workdir) / "bench_byo.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
