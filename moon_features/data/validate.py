"""Validation of a dataset before anything downstream trusts it.

Every error names the offending rows (ids or row numbers), so a user can fix the source.
Missing images are allowed (the encoder falls back to text) and reported, not raised.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..errors import MoonFeaturesError
from ..idmap import IdMapError, check_ids
# The layout (layout.py) imports this module to validate what it loads, so the rules live here
# and this module needs nothing from the layout: the required columns of each table.
ITEM_REQUIRED = ("item_id", "title", "image_path", "first_seen")
USER_REQUIRED = ("user_id",)
INTERACTION_REQUIRED = ("user_id", "item_id", "event_timestamp", "label")

MAX_LISTED = 10  # how many offending ids an error message shows
EARLIEST, LATEST = pd.Timestamp("1970-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC")


class DatasetError(MoonFeaturesError, ValueError):
    """The dataset breaks the layout; the message names the table, the column and the rows."""


@dataclass
class ValidationReport:
    n_items: int
    n_users: int
    n_interactions: int
    items_without_image: list[int] = field(default_factory=list)
    items_without_text: int = 0  # no title (the encoder then has the image and attributes only)
    corrupt_images: dict[int, str] = field(default_factory=dict)  # item_id -> reason

    def summary(self) -> str:
        return (f"{self.n_items:,} items, {self.n_users:,} users, {self.n_interactions:,} interactions; "
                f"{len(self.items_without_image):,} items without image, {self.items_without_text:,} without text, "
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


def _require_ids(df: pd.DataFrame, table: str, column: str) -> str:
    """Ids are any int64 or any strings (features build maps them to dense codes: moon_features.idmap)."""
    try:
        return check_ids(df[column], f"{table}.{column}")
    except IdMapError as e:
        raise DatasetError(str(e)) from None


def _require_same_kind(kinds: dict[str, str], column: str) -> None:
    if len(set(kinds.values())) > 1:
        shown = ", ".join(f"{t}.{column} is {k}" for t, k in kinds.items())
        raise DatasetError(f"{shown}: use one id type in every table (all int64 or all str)")


def _require_finite_numbers(df: pd.DataFrame, table: str, column: str, key: str) -> None:
    """A dense feature is a real number: not text (a string price), not a bool, not NaN / inf."""
    dtype = df[column].dtype
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        raise DatasetError(f"{table}.{column} is a dense feature and must be numbers, got dtype {dtype}; "
                           f"convert it (e.g. pd.to_numeric) or list it as categorical in dataset.json")
    values = df[column].astype("float64")
    bad = df.index[~values.map(math.isfinite)]
    if len(bad):
        raise DatasetError(f"{table}.{column} is NaN or infinite for {key} {_listed(df.loc[bad, key])}")


def _require_text(df: pd.DataFrame, table: str, column: str) -> None:
    """Paths are text or missing (null)."""
    bad = df.index[~df[column].map(lambda v: v is None or isinstance(v, str) or (isinstance(v, float) and v != v))]
    if len(bad):
        raise DatasetError(f"{table}.{column} must be text (or null) in rows {_listed(bad)}")


def _require_sane_times(df: pd.DataFrame, table: str, column: str) -> None:
    """Times Feast and DuckDB can hold (nanoseconds overflow in 2262): 1970 .. 2200."""
    bad = df.index[(df[column] < EARLIEST) | (df[column] > LATEST)]
    if len(bad):
        raise DatasetError(f"{table}.{column} lies outside {EARLIEST.year}..{LATEST.year} in rows {_listed(bad)}")


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

    if len(items) == 0:
        raise DatasetError("items has no rows: a catalogue needs at least one item")
    _require_same_kind({"items": _require_ids(items, "items", "item_id"),
                        "interactions": _require_ids(inter, "interactions", "item_id")}, "item_id")
    _require_same_kind({"users": _require_ids(users, "users", "user_id"),
                        "interactions": _require_ids(inter, "interactions", "user_id")}, "user_id")
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
    _require_text(items, "items", "image_path")
    _require_sane_times(items, "items", "first_seen")
    _require_sane_times(inter, "interactions", "event_timestamp")
    for table, df, cols, key in (("items", items, ds.meta.item_dense, "item_id"),
                                 ("users", users, ds.meta.user_dense, "user_id")):
        for col in cols:
            _require_finite_numbers(df, table, col, key)

    report = ValidationReport(len(items), len(users), len(inter))
    report.items_without_text = int((items["title"].fillna("").astype(str).str.strip() == "").sum())
    for item_id, image_path in zip(items["item_id"], items["image_path"]):
        path = ds.image_file(image_path)
        if path is None:
            report.items_without_image.append(item_id)
        elif check_images:
            reason = check_image(path)
            if reason:
                report.corrupt_images[item_id] = reason
    return report
