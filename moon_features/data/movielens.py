"""Import MovieLens-100k with posters (RecBole atomic files) into the canonical layout.

Label = rating >= 4. Posters are referenced by absolute path, not copied: the data set's
terms forbid redistribution and the images are already on disk.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .layout import Dataset, DatasetMeta, save_dataset
from .validate import DatasetError

ENV_VAR = "MOON_MOVIELENS_DIR"
AGE_BUCKETS = ((18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55"))


def age_bucket(age: int) -> str:
    for upper, name in AGE_BUCKETS:
        if age < upper:
            return name
    return "56+"


def resolve_source(src: str | Path | None) -> Path:
    """The MovieLens folder from the argument, else $MOON_MOVIELENS_DIR, else ../shared beside the repo."""
    candidates = [src, os.environ.get(ENV_VAR),
                  Path(__file__).resolve().parents[3] / "shared/data/movielens-100k"]
    for c in candidates:
        if c and (Path(c) / "ml-100k.inter").exists():
            return Path(c)
    raise DatasetError(f"MovieLens-100k not found (looked at {[str(c) for c in candidates if c]}); "
                       f"pass the folder holding ml-100k.inter or set {ENV_VAR}")


def _read_atomic(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def read_movielens(src: str | Path | None = None) -> Dataset:
    """Read the raw files into a Dataset (not yet written anywhere)."""
    src = resolve_source(src)
    inter = _read_atomic(src / "ml-100k.inter")
    interactions = pd.DataFrame({
        "user_id": inter["user_id"].astype("int64"),
        "item_id": inter["item_id"].astype("int64"),
        "event_timestamp": pd.to_datetime(inter["timestamp"].astype(float).astype("int64"), unit="s", utc=True),
        "rating": inter["rating"].astype("float32"),
    })
    interactions["label"] = (interactions["rating"] >= 4).astype("int8")

    raw_items = _read_atomic(src / "ml-100k.item")
    posters = pd.read_csv(src / "posters.csv", dtype={"item_id": "int64", "poster": str})
    poster_of = dict(zip(posters["item_id"], (str((src / p).resolve()) for p in posters["poster"])))
    item_ids = raw_items["item_id"].astype("int64")
    first_seen = interactions.groupby("item_id")["event_timestamp"].min()
    genres = raw_items["class"].str.split()
    items = pd.DataFrame({
        "item_id": item_ids,
        "title": raw_items["movie_title"],
        "image_path": [poster_of.get(i) for i in item_ids],
        # No release date per item in the data: an item is "seen" at its first rating.
        "first_seen": item_ids.map(first_seen).fillna(interactions["event_timestamp"].min()),
        "category": [g[0] if g else "unknown" for g in genres],
        "genres": ["|".join(g) for g in genres],
        "release_year": raw_items["release_year"].replace("", "unknown"),
    })
    items["first_seen"] = pd.to_datetime(items["first_seen"], utc=True)

    raw_users = _read_atomic(src / "ml-100k.user")
    users = pd.DataFrame({
        "user_id": raw_users["user_id"].astype("int64"),
        "age_bucket": [age_bucket(int(a)) for a in raw_users["age"]],
        "gender": raw_users["gender"],
        "occupation": raw_users["occupation"],
    })
    meta = DatasetMeta(
        name="movielens-100k",
        item_categorical=["category", "release_year"],
        user_categorical=["age_bucket", "gender", "occupation"],
        sequence_attribute="category",
    )
    order = np.lexsort((interactions["item_id"], interactions["user_id"], interactions["event_timestamp"]))
    interactions = interactions.iloc[order].reset_index(drop=True)
    return Dataset(root=src, meta=meta, items=items, users=users,
                   interactions=interactions[["user_id", "item_id", "event_timestamp", "label", "rating"]])


def import_movielens(src: str | Path | None, dst: str | Path) -> Dataset:
    ds = read_movielens(src)
    ds.root = save_dataset(ds, dst)
    return ds
