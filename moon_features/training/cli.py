"""`moon-features train` and `moon-features evaluate`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from ctr_models.registry import model_names

from ..idmap import DatasetIds, coded_dataset
from ..store.configs import DATA_DIR


def _entity_rows(args) -> pd.DataFrame:
    """Entity rows in the repo's dense id codes (the user's own ids are mapped with its id map)."""
    from ..data.layout import load_dataset
    from ..store.sources import entity_rows

    if args.rows:
        return DatasetIds.load(Path(args.repo) / DATA_DIR).encode_rows(pd.read_parquet(args.rows))
    return entity_rows(coded_dataset(load_dataset(args.data))[0])


def _train(args) -> None:
    from .experiment import Experiment
    from .train import train_from_feast

    exp = Experiment.load(args.experiment) if args.experiment else Experiment()
    if args.model:
        exp = Experiment(args.model, exp.use_moon, exp.model_config if args.model == exp.model else {}, exp.trainer)
    cfg = exp.trainer_config(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    train_from_feast(args.repo, _entity_rows(args), args.out, model=exp.model,
                     use_moon=exp.use_moon and not args.no_moon, trainer_config=cfg,
                     model_overrides=exp.model_config, config_file=args.config,
                     engine=args.engine, workers=args.workers)


def _evaluate(args) -> None:
    from .train import describe_splits, evaluate_from_feast, time_split

    rows = _entity_rows(args)
    split = args.split or ("all" if args.rows else "test")
    if split != "all":  # the rows `train` held out: scoring training rows too reports in-sample AUC
        rows = dict(zip(("train", "val", "test"), time_split(rows)))[split]
    print(f"evaluating on the {split} rows of {'--rows' if args.rows else '--data'}:\n"
          + describe_splits({split: rows}), file=sys.stderr)
    metrics = evaluate_from_feast(args.repo, rows, args.model_dir, config_file=args.config)
    print(json.dumps({k: float(v) for k, v in metrics.items()}, indent=2))


def _rows_arguments(p) -> None:
    p.add_argument("--repo", default="feature_repo", help="the Feast repo (spec.json + sources)")
    p.add_argument("--config", default=None, help="another feature_store.yaml, e.g. the Redis variant")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="dataset folder: its interactions are the entity rows")
    src.add_argument("--rows", help="Parquet of entity rows: user_id, item_id, event_timestamp, label")


def add_training_commands(sub) -> None:
    p = sub.add_parser("train", help="train a CTR model on point-in-time features from the repo")
    _rows_arguments(p)
    p.add_argument("--experiment", default=None,
                   help="YAML recipe: model, use_moon, model_config, trainer (see experiments/*.yaml)")
    p.add_argument("--model", choices=model_names(), default=None, help="default: the experiment's, else din")
    p.add_argument("--no-moon", action="store_true", help="ID features only (the baseline)")
    p.add_argument("--out", required=True, help="artifact folder")
    # None = the experiment's value, else TrainerConfig's default
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: Ray Train TorchTrainer, DDP (gloo) over --workers CPU workers (moon-features[ray])")
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers with --engine ray")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="AUC / GAUC / logloss of a saved model on entity rows")
    _rows_arguments(p)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--split", choices=["test", "val", "train", "all"], default=None,
                   help="which rows of train's time split to score (default: test with --data, all with --rows)")
    p.set_defaults(func=_evaluate)
