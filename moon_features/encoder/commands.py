"""The handlers of `moon-features encoder train | embed | evaluate` (the parser is cli.py, which
imports this module only when a command runs: building the parser must not load torch)."""
from __future__ import annotations

import json
from pathlib import Path

from ..data.layout import load_dataset
from ..errors import MoonFeaturesError
from ..idmap import coded_dataset
from .cli import TOWER_CACHE_DIR
from .configuration import embedding_view_name
from .embed import embed_catalogue
from .evaluate import evaluate_encoder, write_report
from .group_eval import evaluate_groups, read_ground_truth
from .pairs import heldout_pairs, split_by_time
from .training import train_encoder


def _load(data: str):
    """(the dataset in dense id codes, its id maps): embeddings are keyed like the feature repo
    (moon_features.idmap)."""
    return coded_dataset(load_dataset(data))


def _tower_store(args) -> Path | None:
    if args.no_tower_cache:
        return None
    return Path(args.cache_dir) if args.cache_dir else Path(args.data) / TOWER_CACHE_DIR


def train(args) -> int:
    overrides = {"num_threads": args.threads}
    for name in ("pretrain_epochs", "posttrain_epochs", "augment_views"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    model_overrides = {}
    if args.text_columns:
        model_overrides["text_columns"] = [c.strip() for c in args.text_columns.split(",") if c.strip()]
    path = train_encoder(_load(args.data)[0], args.preset, args.out, seed=args.seed, model_overrides=model_overrides,
                         schedule_overrides=overrides, resume=not args.no_resume, progress=not args.quiet,
                         before=args.before, tower_store=_tower_store(args))
    print(path)
    return 0


def embed(args) -> int:
    out = Path(args.out) if args.out.endswith(".parquet") else Path(args.out) / f"{embedding_view_name(args.version)}.parquet"
    embed_catalogue(args.model, _load(args.data)[0], out, args.version, args.dim, args.batch_size,
                    progress=not args.quiet, num_threads=args.threads, engine=args.engine, workers=args.workers,
                    tower_store=_tower_store(args))
    return 0


def evaluate(args) -> int:
    if args.groups and args.pairs:
        raise MoonFeaturesError("give either --groups or --pairs, not both")
    ds, ids = _load(args.data)
    if args.groups or args.pairs:
        kind, path = ("groups", args.groups) if args.groups else ("pairs", args.pairs)
        raw = load_dataset(args.data).items["item_id"]
        truth = read_ground_truth(path, kind, raw)
        for c in (["a"] if kind == "groups" else ["a", "b"]):  # the user's ids -> the codes the dataset uses
            truth[c] = ids.items.encode(truth[c].to_numpy())
        res = evaluate_groups(args.model, ds, truth, kind, dim=args.dim, seed=args.seed, num_threads=args.threads,
                              tower_store=_tower_store(args), progress=not args.quiet)
        stem = f"encoder_{kind}_recall"
    else:
        train_log, test_log = split_by_time(ds.interactions, args.holdout)
        pairs = heldout_pairs(train_log, test_log, ds.items["item_id"], max_pairs=args.max_pairs, seed=args.seed)
        res = evaluate_encoder(args.model, ds, pairs, dim=args.dim, baselines=not args.no_baselines,
                               seed=args.seed, num_threads=args.threads, progress=not args.quiet)
        stem = "encoder_quality"
    json_path, png_path = write_report(res, args.out, stem)
    print(json.dumps({k: v for k, v in res.items() if k != "methods"}))
    print(f"wrote {json_path} and {png_path}")
    return 0
