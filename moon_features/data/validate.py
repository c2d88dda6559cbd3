"""Validation of a dataset before anything downstream trusts it.

Every error names the offending rows (ids or row numbers), so a user can fix the source.
Missing images are allowed (the encoder falls back to text) and reported, not raised.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..errors import MoonFeaturesError
# The layout (layout.py) imports this module to validate what it loads, so the rules live here
# and this module needs nothing from the layout: the required columns of each table.
ITEM_REQUIRED = ("item_id", "title", "image_path", "first_seen")
USER_REQUIRED = ("user_id",)
INTERACTION_REQUIRED = ("user_id", "item_id", "event_timestamp", "label")

MAX_LISTED = 10  # how many offending ids an error message shows


class DatasetError(MoonFeaturesError, ValueError):
    """The dataset breaks the layout; the message names the table, the column and the rows."""


@dataclass
class ValidationReport:
    n_items: int
    n_users: int
    n_interactions: int
    items_without_image: list[int] = field(default_factory=list)
    corrupt_images: dict[int, str] = field(default_factory=dict)  # item_id -> reason

    def summary(self) -> str:
        return (f"{self.n_items:,} items, {self.n_users:,} users, {self.n_interactions:,} interactions; "
                f"{len(self.items_without_image):,} items without image, "
                f"{len(self.corrupt_images):,} corrupt images")


def _listed(values) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:MAX_LISTED])
    return shown + (f" ... ({len(values)} in all)" if len(values) > MAX_LISTED else "")


def _require_columns(df: pd.DataFrame, table: str, required) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{table}: missing column(s) {missing}; required are {list(required)}")


def _require_unique(df: pd.DataFrame, table: str, key: str) -> None:
    dup = df.loc[df[key].duplicated(keep=False), key].unique()
    if len(dup):
        raise DatasetError(f"{table}: duplicate {key} {_listed(dup)}")


def _require_utc(df: pd.DataFrame, table: str, column: str) -> None:
    dtype = df[column].dtype
    if not isinstance(dtype, pd.DatetimeTZDtype):
        raise DatasetError(
            f"{table}.{column} has dtype {dtype}: timestamps must be timezone-aware (UTC); "
            f"convert with pd.to_datetime(col, utc=True)")
    bad = df.index[df[column].isna()]
    if len(bad):
        raise DatasetError(f"{table}.{column} is empty in rows {_listed(bad)}")


def _require_int_ids(df: pd.DataFrame, table: str, column: str) -> None:
    if not pd.api.types.is_integer_dtype(df[column].dtype):
        raise DatasetError(f"{table}.{column} must be integer ids, got dtype {df[column].dtype}")
    bad = df.loc[df[column] <= 0, column]
    if len(bad):
        raise DatasetError(f"{table}.{column} must be positive (0 is the padding id); rows {_listed(bad.index)}")


def check_image(path) -> str | None:
    """None if the file decodes as an image, else the reason it does not."""
    try:
        with Image.open(path) as im:
            im.verify()
        return None
    except FileNotFoundError:
        return "file not found"
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        return f"cannot decode: {exc}"


def validate_dataset(ds, check_images: bool = True) -> ValidationReport:
    """Raise DatasetError on the first broken rule of `ds` (a layout.Dataset); return what is
    allowed but worth knowing."""
    items, users, inter = ds.items, ds.users, ds.interactions
    _require_columns(items, "items", ITEM_REQUIRED)
    _require_columns(users, "users", USER_REQUIRED)
    _require_columns(inter, "interactions", INTERACTION_REQUIRED)
    for col in ds.meta.item_categorical + ds.meta.item_dense:
        _require_columns(items, "items", [col])
    for col in ds.meta.user_categorical + ds.meta.user_dense:
        _require_columns(users, "users", [col])

    _require_int_ids(items, "items", "item_id")
    _require_int_ids(users, "users", "user_id")
    _require_unique(items, "items", "item_id")
    _require_unique(users, "users", "user_id")
    _require_utc(items, "items", "first_seen")
    _require_utc(inter, "interactions", "event_timestamp")

    unknown_items = ~inter["item_id"].isin(items["item_id"])
    if unknown_items.any():
        raise DatasetError(
            f"interactions reference unknown item_id {_listed(inter.loc[unknown_items, 'item_id'].unique())} "
            f"(rows {_listed(inter.index[unknown_items])})")
    unknown_users = ~inter["user_id"].isin(users["user_id"])
    if unknown_users.any():
        raise DatasetError(
            f"interactions reference unknown user_id {_listed(inter.loc[unknown_users, 'user_id'].unique())} "
            f"(rows {_listed(inter.index[unknown_users])})")
    bad_labels = ~inter["label"].isin([0, 1])
    if bad_labels.any():
        raise DatasetError(f"interactions.label must be 0 or 1; rows {_listed(inter.index[bad_labels])}")
    for col in ds.meta.item_dense:
        nan = items.index[items[col].isna()]
        if len(nan):
            raise DatasetError(f"items.{col} is NaN for item_id {_listed(items.loc[nan, 'item_id'])}")

    report = ValidationReport(len(items), len(users), len(inter))
    for item_id, image_path in zip(items["item_id"], items["image_path"]):
        path = ds.image_file(image_path)
        if path is None:
            report.items_without_image.append(int(item_id))
        elif check_images:
            reason = check_image(path)
            if reason:
                report.corrupt_images[int(item_id)] = reason
    return report
