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

from .parquet_io import ParquetFileError, read_frame, write_table
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
    write_table(ds.items, root / ITEMS_FILE)
    write_table(ds.users, root / USERS_FILE)
    write_table(ds.interactions, root / INTERACTIONS_FILE)
    return root


def read_meta(root: Path) -> DatasetMeta:
    """dataset.json as DatasetMeta; DatasetError naming the problem when it is malformed."""
    path = root / META_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path} is not valid JSON ({str(e)[:120]}); see docs/data.md for its fields") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} must hold a JSON object, got {type(data).__name__}")
    known = set(DatasetMeta.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown or "name" not in data:
        raise DatasetError(f"{path}: unknown field(s) {unknown[:10]} or no 'name'; fields are {sorted(known)}")
    for key in known - {"name", "sequence_attribute"}:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DatasetError(f"{path}: {key} must be a list of column names")
    if not isinstance(data["name"], str) or not isinstance(data.get("sequence_attribute") or "", str):
        raise DatasetError(f"{path}: name and sequence_attribute must be strings")
    return DatasetMeta(**data)


def load_dataset(root: str | Path, validate: bool = True) -> Dataset:
    """Read a dataset folder; by default run the validator (raises DatasetError)."""
    root = Path(root)
    missing = [f for f in (META_FILE, ITEMS_FILE, USERS_FILE, INTERACTIONS_FILE) if not (root / f).exists()]
    if missing:
        raise DatasetError(f"{root} is not a moon-features dataset: missing {', '.join(missing)}. "
                           "Create one with `moon-features data generate` or `data import-movielens`.")
    ds = Dataset(
        root=root,
        meta=read_meta(root),
        items=_read(root / ITEMS_FILE),
        users=_read(root / USERS_FILE),
        interactions=_read(root / INTERACTIONS_FILE),
    )
    if validate:
        validate_dataset(ds, check_images=False)
    return ds


def _read(path: Path) -> pd.DataFrame:
    try:
        return read_frame(path)
    except ParquetFileError as e:
        raise DatasetError(str(e)) from None
