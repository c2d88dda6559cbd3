"""The canonical on-disk layout of a catalogue and its behaviour log.

A dataset is a folder::

    <root>/dataset.json          name and which columns are categorical / dense attributes
    <root>/items.parquet         item_id, title, image_path, first_seen, + attribute columns
    <root>/users.parquet         user_id, + profile columns
    <root>/interactions.parquet  user_id, item_id, event_timestamp, label, [rating]
    <root>/images/...            image files; items.image_path is relative to <root>

Ids are int64. Timestamps are timezone-aware UTC (naive timestamps are rejected by the
validator because Feast's point-in-time joins silently misalign them).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from .validate import DatasetError, validate_dataset

ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"
INTERACTIONS_FILE = "interactions.parquet"
META_FILE = "dataset.json"
IMAGES_DIR = "images"

# the required columns of each table: see validate.py (ITEM_REQUIRED, USER_REQUIRED, INTERACTION_REQUIRED)


@dataclass
class DatasetMeta:
    """Which columns of items / users are model features, and of what kind."""

    name: str
    item_categorical: list[str] = field(default_factory=list)
    item_dense: list[str] = field(default_factory=list)
    user_categorical: list[str] = field(default_factory=list)
    user_dense: list[str] = field(default_factory=list)
    # The attribute whose values are also attached to every history item (DIN's hist_cate).
    sequence_attribute: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass
class Dataset:
    root: Path
    meta: DatasetMeta
    items: pd.DataFrame
    users: pd.DataFrame
    interactions: pd.DataFrame

    def image_file(self, image_path: str | None) -> Path | None:
        """Absolute path of an item's image, or None when the item has none."""
        if image_path is None or (isinstance(image_path, float) and pd.isna(image_path)):
            return None
        return self.root / image_path


def to_microseconds(df: pd.DataFrame) -> pd.DataFrame:
    """Store timezone-aware timestamps as microseconds: DuckDB (Feast's offline store) cannot
    cast nanosecond TIMESTAMPTZ columns."""
    for col in df.columns:
        if isinstance(df[col].dtype, pd.DatetimeTZDtype) and df[col].dtype.unit != "us":
            df[col] = df[col].dt.as_unit("us")
    return df


def save_dataset(ds: Dataset, root: str | Path | None = None) -> Path:
    root = Path(root or ds.root)
    for table in (ds.items, ds.users, ds.interactions):
        to_microseconds(table)
    root.mkdir(parents=True, exist_ok=True)
    (root / META_FILE).write_text(ds.meta.to_json())
    ds.items.to_parquet(root / ITEMS_FILE, index=False)
    ds.users.to_parquet(root / USERS_FILE, index=False)
    ds.interactions.to_parquet(root / INTERACTIONS_FILE, index=False)
    return root


def load_dataset(root: str | Path, validate: bool = True) -> Dataset:
    """Read a dataset folder; by default run the validator (raises DatasetError)."""
    root = Path(root)
    missing = [f for f in (META_FILE, ITEMS_FILE, USERS_FILE, INTERACTIONS_FILE) if not (root / f).exists()]
    if missing:
        raise DatasetError(f"{root} is not a moon-features dataset: missing {', '.join(missing)}. "
                           "Create one with `moon-features data generate` or `data import-movielens`.")
    meta = DatasetMeta(**json.loads((root / META_FILE).read_text()))
    ds = Dataset(
        root=root,
        meta=meta,
        items=pd.read_parquet(root / ITEMS_FILE),
        users=pd.read_parquet(root / USERS_FILE),
        interactions=pd.read_parquet(root / INTERACTIONS_FILE),
    )
    if validate:
        validate_dataset(ds, check_images=False)
    return ds
