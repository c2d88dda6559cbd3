"""`moon-features encoder train | embed | evaluate`.

The main CLI calls `add_encoder_commands(subparsers)`; `python -m moon_features.encoder.cli`
runs the same commands stand-alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..idmap import coded_dataset


def _load(data: str):
    """The dataset in dense id codes: embeddings are keyed like the feature repo (moon_features.idmap)."""
    from moon_features.data.layout import load_dataset

    return coded_dataset(load_dataset(data))[0]


def _train(args) -> int:
    from .training import train_encoder

    overrides = {"num_threads": args.threads}
    if args.pretrain_epochs is not None:
        overrides["pretrain_epochs"] = args.pretrain_epochs
    if args.posttrain_epochs is not None:
        overrides["posttrain_epochs"] = args.posttrain_epochs
    path = train_encoder(_load(args.data), args.preset, args.out, seed=args.seed, schedule_overrides=overrides,
                         resume=not args.no_resume, progress=not args.quiet)
    print(path)
    return 0


def _embed(args) -> int:
    from .configuration import embedding_view_name
    from .embed import embed_catalogue

    out = Path(args.out) if args.out.endswith(".parquet") else Path(args.out) / f"{embedding_view_name(args.version)}.parquet"
    embed_catalogue(args.model, _load(args.data), out, args.version, args.dim, args.batch_size,
                    progress=not args.quiet, num_threads=args.threads, engine=args.engine, workers=args.workers)
    return 0


def _evaluate(args) -> int:

    from .evaluate import evaluate_encoder, write_report
    from .pairs import heldout_pairs, split_by_time

    ds = _load(args.data)
    train_log, test_log = split_by_time(ds.interactions, args.holdout)
    pairs = heldout_pairs(train_log, test_log, ds.items["item_id"], max_pairs=args.pairs, seed=args.seed)
    res = evaluate_encoder(args.model, ds, pairs, dim=args.dim, baselines=not args.no_baselines,
                           seed=args.seed, num_threads=args.threads, progress=not args.quiet)
    json_path, png_path = write_report(res, args.out)
    print(json.dumps({k: v for k, v in res.items() if k != "methods"}))
    print(f"wrote {json_path} and {png_path}")
    return 0


def add_encoder_commands(subparsers) -> argparse.ArgumentParser:
    """Register `encoder train|embed|evaluate` on an argparse subparsers object."""
    enc = subparsers.add_parser("encoder", help="train / run / evaluate the MOON item encoder")
    sub = enc.add_subparsers(dest="encoder_command", required=True)

    def common(p):
        p.add_argument("--data", required=True, help="dataset root (canonical layout)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    t = sub.add_parser("train", help="stage 1 (image-title) + stage 2 (behaviour) training")
    common(t)
    t.add_argument("--out", default="runs/encoder", help="writes <out>/checkpoint and <out>/model")
    t.add_argument("--preset", default="demo", choices=["demo", "small", "full"])
    t.add_argument("--pretrain-epochs", type=int)
    t.add_argument("--posttrain-epochs", type=int)
    t.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    t.set_defaults(func=_train)

    e = sub.add_parser("embed", help="embed the catalogue into the item_moon_embedding_v<version> source")
    common(e)
    e.add_argument("--model", required=True, help="encoder folder (<train --out>/model)")
    e.add_argument("--out", required=True, help="a .parquet path, or a folder for <view name>.parquet")
    e.add_argument("--version", type=int, default=1)
    e.add_argument("--dim", type=int, default=None, help="Matryoshka dimension (default: largest)")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: Ray Data map_batches over --workers actors (needs moon-features[ray]; RAY_ADDRESS "
                        "for a cluster); the output equals the local job's")
    e.add_argument("--workers", type=int, default=2, help="Ray actors (one CPU each) with --engine ray")
    e.set_defaults(func=_embed)

    v = sub.add_parser("evaluate", help="image-search recall@K on held-out co-engagement pairs + baselines")
    common(v)
    v.add_argument("--model", required=True)
    v.add_argument("--out", default="runs/encoder_eval", help="folder for encoder_quality.json / .png")
    v.add_argument("--dim", type=int, default=None)
    v.add_argument("--holdout", type=float, default=0.2)
    v.add_argument("--pairs", type=int, default=2000)
    v.add_argument("--no-baselines", action="store_true")
    v.set_defaults(func=_evaluate)
    return enc


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ..errors import MoonFeaturesError

    parser = argparse.ArgumentParser(prog="moon-features")
    add_encoder_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MoonFeaturesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
