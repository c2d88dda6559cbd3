"""The `moon-features` command: the parser. Each capability registers its own subcommands; handlers
are named by dotted path (command.handler) and live in commands.py modules."""
from __future__ import annotations

import argparse
from pathlib import Path

# third-party warning noise (ibis's fetch_arrow_table DeprecationWarning) is filtered in command.run
from .command import exit_now, handler, run
from .encoder.cli import add_encoder_commands
from .lab.cli import add_lab_commands
from .serving.cli import add_serving_commands
from .store.cli import add_store_commands
from .training.cli import add_training_commands


def version_list(text: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2): positive embedding versions, each once (argparse type)."""
    try:
        versions = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is no comma-separated list of versions, e.g. 1,2") from None
    if not versions or min(versions) <= 0 or len(set(versions)) != len(versions):
        raise argparse.ArgumentTypeError(f"{text!r}: give positive versions, each once, e.g. 1,2")
    return versions


def _add_check_consistency(sub) -> None:
    p = sub.add_parser("check-consistency",
                       help="offline (training) vs online (serving) scores of sampled rows must agree")
    p.add_argument("--repo", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--config", default=None, help="another feature_store.yaml, e.g. the Redis one")
    p.add_argument("--rows", type=int, default=200, help="sampled (user, item) rows")
    p.add_argument("--tolerance", type=float, default=1e-5,
                   help="max |offline - online| (int8 is bounded by 1e-3, not 1e-5)")
    p.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default="torch",
                   help="the online scorer's model backend (the onnx ones need the onnx extra)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--materialize", action="store_true", help="materialize all views first")
    p.set_defaults(func=handler("moon_features.commands:check_consistency"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moon-features",
                                     description="MOON-style multimodal item embeddings as Feast features for CTR models")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data_commands(sub)
    _add_features_and_demo(sub)
    _add_check_consistency(sub)
    for register in _plugin_registrars():
        register(sub)
    return parser


def _add_data_commands(sub) -> None:
    data = sub.add_parser("data", help="create, import and validate datasets").add_subparsers(dest="data_command",
                                                                                               required=True)
    p = data.add_parser("generate", help="write a synthetic shop (rendered product images + click log)")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--users", type=int, default=None, help="default: items / 2")
    p.add_argument("--impressions", type=int, default=40, help="mean impressions per user")
    p.add_argument("--weeks", type=int, default=4)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--purchase-only", action="store_true", help="keep only positives (an implicit-feedback log)")
    p.add_argument("--sparse-ids", action="store_true",
                   help="natural ids: item ids up to 949,551,001, user ids as text ('C' + 7 digits)")
    p.add_argument("--no-text-share", type=float, default=0.0, help="share of items without a title, e.g. 0.7")
    p.add_argument("--arrival-span", type=float, default=0.9,
                   help="new items arrive over this first fraction of the log (1.0: until its last day, as in a "
                        "real shop; 0.9: none in the test period)")
    p.add_argument("--context", action="store_true",
                   help="add the log columns hour_of_day and device, which shift click rates (context features: "
                        "`features build --context-columns hour_of_day,device`)")
    p.add_argument("--event-types", action="store_true",
                   help="add the log column event_type (impression / click / purchase; purchases follow the user's "
                        "category taste), for a second behaviour sequence: `features build --sequence purchase=purchase`")
    p.set_defaults(func=handler("moon_features.commands:data_generate"))

    p = data.add_parser("sample-negatives", help="add label-0 rows to a purchase-only log, honestly",
                        description="For each positive (user, item, t): negatives drawn only from items that "
                                    "exist at t (first_seen <= t), weighted by recent popularity, never an item "
                                    "the user bought, seeded. Uniform sampling over the whole catalogue would make "
                                    "late items negatives-only in training (test AUC below 0.5): docs/data.md.")
    p.add_argument("--data", required=True, help="dataset folder (its label-1 rows are the positives)")
    p.add_argument("--out", required=True, help="dataset folder to write (images are linked, not copied)")
    p.add_argument("--per-positive", type=int, default=4, help="negatives per positive")
    p.add_argument("--window-days", type=float, default=28.0, help="popularity = positives in this window before t")
    p.add_argument("--popularity", choices=["rate", "count"], default="rate",
                   help="rate: purchases per day the item existed in the window (a new item is drawn as often as an "
                        "old one that sells as fast); count: purchases in the window (new items rarely drawn)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=handler("moon_features.commands:data_sample_negatives"))

    p = data.add_parser("import-movielens", help="import MovieLens-100k with posters")
    p.add_argument("--src", default=None, help="folder with ml-100k.inter (default: $MOON_MOVIELENS_DIR or "
                                               "../shared/data/movielens-100k)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=handler("moon_features.commands:data_import_movielens"))

    p = data.add_parser("validate", help="check a dataset folder; errors name the rows")
    p.add_argument("data")
    p.add_argument("--skip-images", action="store_true", help="do not decode every image")
    p.set_defaults(func=handler("moon_features.commands:data_validate"))


def _add_features_and_demo(sub) -> None:
    features = sub.add_parser("features", help="feature repository").add_subparsers(dest="features_command",
                                                                                     required=True)
    p = features.add_parser("build", help="write spec.json and offline sources into a Feast repo, then apply it")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--repo", default="feature_repo")
    p.add_argument("--max-len", type=int, default=50, help="behaviour sequence length L")
    p.add_argument("--online", choices=["sqlite", "redis"], default=None,
                   help="rewrite feature_store.yaml for this online store (default: keep it)")
    p.add_argument("--context-columns", default="",
                   help="comma-separated interaction-log columns to train on as context features, e.g. "
                        "hour_of_day,device; /score then needs them in its `context` (default: none)")
    p.add_argument("--embedding-versions", type=version_list, default=None, metavar="N[,N...]",
                   help="comma-separated embedding versions to pin, each with a source data/item_moon_embedding_v<N>"
                        ".parquet in the repo; models read their vectors concatenated in this order "
                        "(default: the newest version there)")
    p.add_argument("--sequence", action="append", default=[], metavar="NAME=TYPE[,TYPE...]",
                   help="a behaviour sequence besides the main one (every positive): the positives whose event_type "
                        "column is one of the types, e.g. purchase=purchase; repeatable. Item ids only; DeepFM "
                        "pools each, DIN attends over each (torch, onnx, TF; docs/concepts.md)")
    p.set_defaults(func=handler("moon_features.commands:features_build"))

    p = sub.add_parser("demo", help="run the whole pipeline on a synthetic shop with the embedded default")
    p.add_argument("--workdir", default="runs/demo", help="where datasets, models and plots go")
    p.add_argument("--repo", default="feature_repo", help="the Feast repo to fill")
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=handler("moon_features.commands:demo"))


def _plugin_registrars():
    """Subcommands contributed by the capability packages."""
    return [add_encoder_commands, add_store_commands, add_training_commands, add_serving_commands,
            add_lab_commands]


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def entry_point() -> None:
    """Console-script entry (see command.exit_now for why it skips interpreter finalisation)."""
    exit_now(main())


if __name__ == "__main__":
    entry_point()
