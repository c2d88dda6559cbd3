"""Handlers of the main CLI's own subcommands (the parser is cli.py): data, features build,
check-consistency, demo."""
from __future__ import annotations

from pathlib import Path

from .consistency import check_repo_consistency
from .data.layout import load_dataset, save_dataset
from .data.movielens import import_movielens
from .data.negatives import sample_negatives
from .data.shop_variants import drop_text, purchase_only, sparse_ids
from .data.synthetic import generate_shop
from .data.validate import validate_dataset
from .demo import run_demo
from .features import build_feature_repo
from .fields import SequenceSpec


def data_generate(args) -> None:
    ds = generate_shop(args.out, n_items=args.items, n_users=args.users, impressions_per_user=args.impressions,
                       weeks=args.weeks, seed=args.seed, image_size=args.image_size, context=args.context,
                       arrival_span=args.arrival_span, event_types=args.event_types)
    # the shapes real catalogues arrive in (the "bring your own catalogue" path): data/shop_variants.py
    if args.purchase_only:
        ds = purchase_only(ds)
    if args.sparse_ids:
        ds = sparse_ids(ds, seed=args.seed)
    if args.no_text_share:
        ds = drop_text(ds, args.no_text_share, seed=args.seed)
    if args.purchase_only or args.sparse_ids or args.no_text_share:
        save_dataset(ds, args.out)


def data_sample_negatives(args) -> None:
    ds = load_dataset(args.data)
    out = Path(args.out)
    sampled = sample_negatives(ds, per_positive=args.per_positive, seed=args.seed, window_days=args.window_days,
                               popularity=args.popularity)
    save_dataset(sampled, out)
    images = Path(args.data).resolve() / "images"
    if images.is_dir() and not (out / "images").exists():
        (out / "images").symlink_to(images, target_is_directory=True)  # image_path is relative to the root
    n_neg = int((sampled.interactions["label"] == 0).sum())
    print(f"{out}: {len(sampled.interactions) - n_neg:,} positives + {n_neg:,} sampled negatives "
          f"({args.per_positive} per positive, existing items only, weighted by {args.window_days:g}-day "
          f"popularity ({args.popularity}), seed {args.seed})")


def data_import_movielens(args) -> None:
    ds = import_movielens(args.src, args.out)
    print(f"imported MovieLens-100k -> {args.out}: {validate_dataset(ds, check_images=False).summary()}")


def data_validate(args) -> None:
    ds = load_dataset(args.data, validate=False)
    report = validate_dataset(ds, check_images=not args.skip_images)
    print(f"{args.data}: valid. {report.summary()}")
    for item_id, reason in list(report.corrupt_images.items())[:20]:
        print(f"  corrupt image for item {item_id}: {reason}")


def features_build(args) -> None:
    context = [c.strip() for c in (args.context_columns or "").split(",") if c.strip()]
    build_feature_repo(args.data, args.repo, max_len=args.max_len, online=args.online, context_columns=context,
                       embedding_versions=args.embedding_versions,
                       sequences=[SequenceSpec.parse(text) for text in args.sequence])


def check_consistency(args) -> None:
    report = check_repo_consistency(args.repo, args.model_dir, n_rows=args.rows, config_file=args.config,
                                    seed=args.seed, tolerance=args.tolerance, materialize=args.materialize,
                                    backend=args.backend)
    print(report.line())
    report.raise_for_mismatch()


def demo(args) -> None:
    run_demo(workdir=Path(args.workdir), repo=Path(args.repo), n_items=args.items, seed=args.seed)
