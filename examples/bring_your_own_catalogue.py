"""Bring your own catalogue: put your tables in the layout, validate, build the Feast repo.

    python examples/bring_your_own_catalogue.py [--out runs/my_shop]

Replace the three DataFrames below with your own items, users and interactions.
"""
import argparse
from pathlib import Path

import pandas as pd
from PIL import Image

from moon_features.data.layout import Dataset, DatasetMeta, save_dataset
from moon_features.data.validate import validate_dataset
from moon_features.features import build_feature_repo

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/my_shop")
    out = Path(parser.parse_args().out)
    (out / "images").mkdir(parents=True, exist_ok=True)

    # 1. Your catalogue. Images may be missing (None): such items get text-only embeddings.
    for item_id, colour in ((1, "red"), (2, "navy")):
        Image.new("RGB", (64, 64), colour).save(out / "images" / f"{item_id}.jpg")
    t0 = pd.Timestamp("2026-03-01", tz="UTC")
    items = pd.DataFrame({
        "item_id": [1, 2, 3],
        "title": ["red cotton shirt", "navy wool scarf", "ceramic mug"],
        "image_path": ["images/1.jpg", "images/2.jpg", None],
        "first_seen": [t0, t0, t0 + pd.Timedelta("2D")],
        "category": ["apparel", "apparel", "kitchen"],
        "price": [19.0, 25.0, 9.5],
    })
    users = pd.DataFrame({"user_id": [1, 2], "segment": ["new", "loyal"]})
    interactions = pd.DataFrame({
        "user_id": [1, 1, 2, 2],
        "item_id": [1, 2, 2, 3],
        "event_timestamp": pd.to_datetime(["2026-03-02 10:00", "2026-03-02 10:05",
                                           "2026-03-03 09:00", "2026-03-04 12:00"], utc=True),
        "label": [1, 0, 1, 1],
    })
    meta = DatasetMeta(name="my_shop", item_categorical=["category"], item_dense=["price"],
                       user_categorical=["segment"], sequence_attribute="category")

    # 2. Write the layout and validate: a DatasetError names the rows to fix.
    ds = Dataset(out, meta, items, users, interactions)
    save_dataset(ds)
    print(validate_dataset(ds).summary())

    # 3. The Feast repo: spec.json, sources, apply. Next: `moon-features encoder train/embed`,
    #    `features build` again to pin the embedding version, then `moon-features train`.
    build_feature_repo(out, out / "feature_repo")
