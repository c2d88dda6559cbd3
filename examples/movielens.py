"""MovieLens-100k with posters end to end: import, MOON encoder, Feast repo, DIN with and without MOON.

    python examples/movielens.py ../shared/data/movielens-100k [--workdir runs/movielens] [--preset small]
"""
import argparse
from pathlib import Path

from ctr_models.trainer import TrainerConfig
from moon_features.data.layout import Dataset
from moon_features.data.movielens import import_movielens
from moon_features.encoder.embed import embed_catalogue
from moon_features.encoder.training import train_encoder
from moon_features.features import build_feature_repo
from moon_features.spec import EmbeddingSpec, embedding_view_name
from moon_features.store.sources import entity_rows
from moon_features.training.train import time_split, train_from_feast

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("movielens_dir", help="folder with ml-100k.inter, posters.csv, posters/")
    parser.add_argument("--workdir", default="runs/movielens")
    parser.add_argument("--preset", default="small", choices=["demo", "small", "full"])
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    work = Path(args.workdir)
    repo = work / "feature_repo"

    ds = import_movielens(args.movielens_dir, work / "dataset")
    rows = entity_rows(ds)
    train_rows, _, _ = time_split(rows)
    # The encoder learns from behaviour: only the CTR model's training period.
    early = ds.interactions[ds.interactions["event_timestamp"] <= train_rows["event_timestamp"].max()]
    encoder = train_encoder(Dataset(ds.root, ds.meta, ds.items, ds.users, early), args.preset, work / "encoder")
    embed_catalogue(encoder, ds, repo / "data" / f"{embedding_view_name(1)}.parquet", version=1, dim=args.dim)
    build_feature_repo(work / "dataset", repo, embedding=EmbeddingSpec(1, args.dim))
    for use_moon in (False, True):
        train_from_feast(repo, rows, work / ("din_moon" if use_moon else "din_ids"), use_moon=use_moon,
                         trainer_config=TrainerConfig(epochs=5))
