"""The MOON encoder for the CTR benchmark, trained without leakage: only on events that are in
the training set of BOTH splits of bench/ctr_quality.py (so no split A validation/test period,
no split B validation/test event) and never on a cold item's events. Writes the embedding
parquet that `bench/ctr_quality.py --embeddings` reads.

    python bench/ctr_encoder.py --data ../shared/data/movielens-100k --out runs/clean_encoder
    python bench/ctr_quality.py --data ../shared/data/movielens-100k --models din_moon,deepfm_moon \
        --embeddings runs/clean_encoder/item_moon_embedding_v1.parquet --pca 64 --out runs/ctr_clean
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from moon_features.data import movielens_ctr  # noqa: E402
from moon_features.data.movielens import read_movielens  # noqa: E402
from moon_features.encoder.embed import embed_catalogue  # noqa: E402
from moon_features.encoder.training import train_encoder  # noqa: E402


def encoder_log(root: str, dataset) -> pd.DataFrame:
    """The dataset's interactions restricted to rows in split A's and split B's training sets."""
    a = movielens_ctr.load(root).arrays
    allowed = np.intersect1d(movielens_ctr.make_split(a, "A")["train"], movielens_ctr.make_split(a, "B")["train"])
    keys = pd.DataFrame({"user_id": a["user_id"][allowed], "item_id": a["item_id"][allowed],
                         "ts": a["timestamp"][allowed]}).drop_duplicates()
    log = dataset.interactions.assign(ts=dataset.interactions["event_timestamp"].astype("int64") // 10**9)
    clean = log.merge(keys, on=["user_id", "item_id", "ts"]).drop(columns="ts")
    return clean.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/movielens-100k")
    ap.add_argument("--out", default="runs/clean_encoder")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--taste-dims", type=int, default=None,
                    help="override the preset's taste_dims (0 turns the taste part off); default: the preset's")
    args = ap.parse_args(argv)
    out = Path(args.out)
    ds = read_movielens(args.data)
    log = encoder_log(args.data, ds)
    print(f"encoder log: {len(log):,} of {len(ds.interactions):,} interactions "
          "(training rows of splits A and B, no cold items)", flush=True)
    t0 = time.time()
    model_overrides = {} if args.taste_dims is None else {"taste_dims": args.taste_dims}
    model_dir = train_encoder(replace(ds, interactions=log), args.preset, out / "encoder", seed=args.seed,
                              model_overrides=model_overrides, schedule_overrides={"num_threads": args.threads})
    rep = embed_catalogue(model_dir, ds, out / "item_moon_embedding_v1.parquet", version=1, num_threads=args.threads)
    print(f"trained in {(time.time() - t0) / 60:.1f} min incl. embedding; {rep.items_per_s} items/s -> {rep.path}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
