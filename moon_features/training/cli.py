"""`moon-features train` and `moon-features evaluate`: the parser (handlers: training/commands.py)."""
from __future__ import annotations

from ctr_models.registry import model_names

from ..command import handler


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
    p.set_defaults(func=handler("moon_features.training.commands:train_command"))

    p = sub.add_parser("evaluate", help="AUC / GAUC / logloss of a saved model on entity rows")
    _rows_arguments(p)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--split", choices=["test", "val", "train", "all"], default=None,
                   help="which rows of train's time split to score (default: test with --data, all with --rows)")
    p.set_defaults(func=handler("moon_features.training.commands:evaluate_command"))
