"""Handlers of `moon-features train` and `moon-features evaluate` (the parser is training/cli.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from ..data.layout import load_dataset
from ..idmap import DatasetIds, coded_dataset
from ..store.configs import DATA_DIR
from ..store.repo import load_spec
from ..store.sources import entity_rows
from .experiment import Experiment
from .train import describe_splits, evaluate_from_feast, time_split, train_from_feast


def _entity_rows(args) -> pd.DataFrame:
    """Entity rows in the repo's dense id codes (the user's own ids are mapped with its id map)."""
    if args.rows:
        return DatasetIds.load(Path(args.repo) / DATA_DIR).encode_rows(pd.read_parquet(args.rows))
    return entity_rows(coded_dataset(load_dataset(args.data))[0], load_spec(args.repo))


def train_command(args) -> None:
    exp = Experiment.load(args.experiment) if args.experiment else Experiment()
    if args.model:
        exp = Experiment(args.model, exp.use_moon, exp.model_config if args.model == exp.model else {}, exp.trainer)
    cfg = exp.trainer_config(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    train_from_feast(args.repo, _entity_rows(args), args.out, model=exp.model,
                     use_moon=exp.use_moon and not args.no_moon, trainer_config=cfg,
                     model_overrides=exp.model_config, config_file=args.config,
                     engine=args.engine, workers=args.workers)


def evaluate_command(args) -> None:
    rows = _entity_rows(args)
    split = args.split or ("all" if args.rows else "test")
    if split != "all":  # the rows `train` held out: scoring training rows too reports in-sample AUC
        rows = dict(zip(("train", "val", "test"), time_split(rows)))[split]
    print(f"evaluating on the {split} rows of {'--rows' if args.rows else '--data'}:\n"
          + describe_splits({split: rows}), file=sys.stderr)
    metrics = evaluate_from_feast(args.repo, rows, args.model_dir, config_file=args.config)
    print(json.dumps({k: float(v) for k, v in metrics.items()}, indent=2))
