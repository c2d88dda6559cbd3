"""Encoder quality on MovieLens-100k with posters: image-based search recall of the trained
MOON encoder against baselines measured in the same run, plus embedding throughput.

    python bench/encoder_quality.py --data ../shared/data/movielens-100k --out runs/encoder_quality

Protocol: the interaction log is split by time (latest 20% held out). The encoder trains
(both stages) on the earlier 80% only. Evaluation pairs are co-engagement pairs of the
held-out period that never occur in the training period. Prints the figures and writes
encoder_quality.json + encoder_quality.png under --out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moon_features.data.movielens import read_movielens  # noqa: E402
from moon_features.encoder.embed import embed_catalogue  # noqa: E402
from moon_features.encoder.evaluate import evaluate_encoder, write_report  # noqa: E402
from moon_features.encoder.pairs import heldout_pairs, split_by_time  # noqa: E402
from moon_features.encoder.training import resolve_preset, train_encoder  # noqa: E402


def parse_overrides(items: list[str], types: dict, flag: str) -> dict:
    """["max_pairs_per_epoch=16384", "logq_correction=false"] -> {key: typed value}; unknown keys named."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise SystemExit(f"{flag} {item!r}: expected KEY=VALUE with KEY one of {sorted(types)}")
        kind = types[key]
        out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def schedule_overrides(items: list[str]) -> dict:
    import dataclasses

    from moon_features.encoder.configuration import TrainSchedule

    return parse_overrides(items, {f.name: type(f.default) for f in dataclasses.fields(TrainSchedule)}, "--schedule")


def model_overrides(items: list[str], preset: str) -> dict:
    """Scalar fields of the preset's model settings, e.g. image_size=128."""
    from moon_features.encoder.configuration import get_preset

    scalars = {k: type(v) for k, v in get_preset(preset).model.items() if isinstance(v, (bool, int, float, str))}
    return parse_overrides(items, scalars, "--model")


def with_popularity_attribute(ds, popularity):
    """A copy of `ds` whose items carry `popularity`, a categorical attribute: the log2 bucket of
    the item's interaction count in `popularity` (item id -> count; "0" for none). The gallery side
    of the encoder can then carry the signal that the popularity reference ranks by."""
    counts = popularity.reindex(ds.items["item_id"]).fillna(0).to_numpy()
    items = ds.items.assign(popularity=[str(int(b)) for b in np.floor(np.log2(counts + 1))])
    meta = replace(ds.meta, item_categorical=[*ds.meta.item_categorical, "popularity"])
    return replace(ds, items=items, meta=meta)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/movielens-100k", help="MovieLens-100k-with-posters folder")
    ap.add_argument("--out", default="runs/encoder_quality")
    ap.add_argument("--preset", default="small", choices=["demo", "small", "full"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--holdout", type=float, default=0.2, help="latest fraction of the log held out")
    ap.add_argument("--eval-pairs", type=int, default=0,
                    help="held-out pairs sampled for the evaluation; 0 (default): all of them (26,717 on "
                         "MovieLens-100k; recall costs little next to embedding, and more pairs narrow the intervals)")
    ap.add_argument("--embed-batch", type=int, default=64)
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--schedule", action="append", default=[], metavar="KEY=VALUE",
                    help="override one field of the preset's TrainSchedule (repeatable), e.g. "
                         "--schedule max_pairs_per_epoch=16384 --schedule posttrain_lr=5e-4")
    ap.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                    help="override one scalar of the preset's model settings (repeatable), e.g. --model image_size=128")
    ap.add_argument("--popularity-attribute", action="store_true",
                    help="give items a categorical `popularity` attribute (log2 bucket of training-period count)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    t0 = time.time()
    ds = read_movielens(args.data)
    train_log, test_log = split_by_time(ds.interactions, args.holdout)
    # reference, not a content baseline: rank the gallery by training-period interaction count
    popularity = train_log.groupby("item_id").size()
    if args.popularity_attribute:
        ds = with_popularity_attribute(ds, popularity)
    overrides = {"num_threads": args.threads, **schedule_overrides(args.schedule)}
    schedule = resolve_preset(args.preset, schedule_overrides=overrides).schedule
    t_train = time.time()
    model_dir = train_encoder(replace(ds, interactions=train_log), args.preset, out / "encoder", seed=args.seed,
                              model_overrides=model_overrides(args.model, args.preset),
                              schedule_overrides=overrides, resume=not args.no_resume)
    train_seconds = time.time() - t_train
    # primary: co-engagement pairs of the held-out period; also: only those never seen in training
    pairs = heldout_pairs(train_log, test_log, ds.items["item_id"], schedule.pair_window, schedule.pair_max_gap_s,
                          max_pairs=args.eval_pairs or None, seed=args.seed, novel_only=False)
    novel = heldout_pairs(train_log, test_log, ds.items["item_id"], schedule.pair_window, schedule.pair_max_gap_s,
                          max_pairs=args.eval_pairs or None, seed=args.seed, novel_only=True)
    ev = evaluate_encoder(model_dir, ds, pairs, ks=(1, 10, 50), seed=args.seed, num_threads=args.threads,
                          extra_pairs={"novel": novel}, popularity=popularity)
    rep = embed_catalogue(model_dir, ds, out / "item_moon_embedding_v1.parquet", version=1,
                          batch_size=args.embed_batch, num_threads=args.threads)
    training = json.loads((Path(model_dir) / "training.json").read_text())
    result = {"command": "python bench/encoder_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "preset": args.preset, "seed": args.seed, "threads": args.threads,
              "train_interactions": len(train_log), "heldout_interactions": len(test_log),
              "train_wall_seconds": round(train_seconds, 1), "training": training, "evaluation": ev,
              "embedding": rep.to_dict(), "total_seconds": round(time.time() - t0, 1)}
    json_path, png_path = write_report(result, out)
    m = ev["methods"]
    print(f"\n== encoder quality: MovieLens-100k, {ev['n_pairs']} held-out pairs, gallery {ev['n_gallery']}, "
          f"dim {ev['dim']} ==")
    print(f"{'method':32s}" + "".join(f"{'R@' + str(k):>9s}" for k in ev["ks"]) + f"{'dup@1':>9s}{'dup@10':>9s}")
    for name, r in m.items():
        print(f"{name:32s}" + "".join(f"{r[f'recall@{k}']:9.3f}" for k in ev["ks"])
              + "".join(f"{r.get(k, float('nan')):9.3f}" for k in ("near_duplicate@1", "near_duplicate@10")))
    print(f"{'novel pairs only (never co-engaged in training):':48s}" + "  ".join(
        f"{name} R@10={r['novel/recall@10']:.3f}" for name, r in m.items()))
    print("trained encoder minus each method, recall@10 on the same queries (95% paired bootstrap interval): "
          + "; ".join(f"{name} {c['difference']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
                      for name, c in ev["paired_vs_encoder"].items()))
    best_name, best = max(((n, r["recall@10"]) for n, r in m.items() if n not in ("moon_encoder", "popularity")),
                          key=lambda x: x[1])
    resumed = "" if training.get("resumed_after_epoch") is None else (
        f" in this run, resumed after epoch {training['resumed_after_epoch']} (all epochs: "
        f"{training['epoch_seconds'] / 60:.1f} min, caching excluded)")
    pop = f", popularity reference {m['popularity']['recall@10']:.3f}" if "popularity" in m else ""
    print(f"trained recall@10 {m['moon_encoder']['recall@10']:.3f} vs best baseline {best:.3f} ({best_name}){pop}; "
          f"training (both stages) {train_seconds / 60:.1f} min{resumed}; embedding {rep.items_per_s} items/s "
          f"(batch {rep.batch_size}, {rep.image_size}px, {rep.num_threads} thread); -> {json_path}, {png_path}")
    return result


if __name__ == "__main__":
    main()
