"""`moon-features encoder train | embed | evaluate`: the parser (handlers: commands.py).

The main CLI calls `add_encoder_commands(subparsers)`; `python -m moon_features.encoder.cli`
runs the same commands stand-alone. Every command keeps the frozen towers' outputs in a tower
store on disk (default `<data>/.tower_cache`, see frozen.py), so a second run on the same
catalogue skips the tower pass.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..command import handler, run

TOWER_CACHE_DIR = ".tower_cache"


def _common(p) -> None:
    p.add_argument("--data", required=True, help="dataset root (canonical layout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the idle cores now, 1..4; a loaded machine gets 1)")
    p.add_argument("--cache-dir", default=None,
                   help=f"tower store: frozen tower outputs kept across runs (default: <data>/{TOWER_CACHE_DIR})")
    p.add_argument("--no-tower-cache", action="store_true", help="keep tower outputs in memory for this run only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="stage 1 (image-title) + stage 2 (behaviour) training")
    _common(t)
    t.add_argument("--out", default="runs/encoder", help="writes <out>/checkpoint and <out>/model")
    t.add_argument("--preset", default="demo", choices=["demo", "small", "full"])
    t.add_argument("--before", default=None,
                   help="train on interactions strictly before this date only (e.g. 2024-03-01), co-engagement "
                        "pairs too; 'auto': the last timestamp of the training split `moon-features train "
                        "--data` makes of the same --data (printed), so the encoder never sees the CTR "
                        "model's validation or test period; a .parquet path: the same for the entity rows "
                        "of `train --rows FILE`")
    t.add_argument("--text-columns", default=None,
                   help="comma-separated item columns the text tower reads, or 'auto' (title + categorical "
                        "attributes + multi-valued text columns); default: the preset's")
    t.add_argument("--augment-views", type=int, help="augmented copies per image (default: the preset's)")
    t.add_argument("--pretrain-epochs", type=int)
    t.add_argument("--posttrain-epochs", type=int)
    t.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    t.set_defaults(func=handler("moon_features.encoder.commands:train"))


def _add_embed(sub) -> None:
    e = sub.add_parser("embed", help="embed the catalogue into the item_moon_embedding_v<version> source")
    _common(e)
    e.add_argument("--model", required=True, help="encoder folder (<train --out>/model)")
    e.add_argument("--out", required=True, help="a .parquet path, or a folder for <view name>.parquet")
    e.add_argument("--version", type=int, default=1)
    e.add_argument("--dim", type=int, default=None, help="Matryoshka dimension (default: largest)")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: Ray Data map_batches over --workers actors (needs moon-features[ray]; RAY_ADDRESS "
                        "for a cluster); the output equals the local job's")
    e.add_argument("--workers", type=int, default=2, help="Ray actors (one CPU each) with --engine ray")
    e.set_defaults(func=handler("moon_features.encoder.commands:embed"))


def _add_evaluate(sub) -> None:
    v = sub.add_parser("evaluate", help="same-group recall@K (--groups / --pairs), or image-search recall@K on "
                                        "held-out co-engagement pairs; with baselines")
    _common(v)
    v.add_argument("--model", required=True)
    v.add_argument("--out", default="runs/encoder_eval", help="folder for the report (.json / .png)")
    v.add_argument("--dim", type=int, default=None)
    v.add_argument("--groups", default=None, help="CSV / Parquet (item_id, group_id): items that belong together")
    v.add_argument("--pairs", default=None, help="CSV / Parquet (item_id, item_id): items that belong together")
    v.add_argument("--holdout", type=float, default=0.2, help="co-engagement: latest share of the log held out")
    v.add_argument("--max-pairs", type=int, default=2000, help="co-engagement: pairs sampled from the held-out log")
    v.add_argument("--no-baselines", action="store_true", help="co-engagement: skip the baselines")
    v.set_defaults(func=handler("moon_features.encoder.commands:evaluate"))


def add_encoder_commands(subparsers) -> argparse.ArgumentParser:
    """Register `encoder train|embed|evaluate` on an argparse subparsers object."""
    enc = subparsers.add_parser("encoder", help="train / run / evaluate the MOON item encoder")
    sub = enc.add_subparsers(dest="encoder_command", required=True)
    _add_train(sub)
    _add_embed(sub)
    _add_evaluate(sub)
    return enc


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="moon-features")
    add_encoder_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
