"""The validator rejects each kind of bad input with a message that names the rows."""
from __future__ import annotations

import copy
import shutil

import pandas as pd
import pytest

from moon_features.data.layout import Dataset, load_dataset, save_dataset
from moon_features.data.validate import DatasetError, validate_dataset


def _copy(ds: Dataset) -> Dataset:
    return Dataset(ds.root, copy.deepcopy(ds.meta), ds.items.copy(), ds.users.copy(), ds.interactions.copy())


def test_valid_shop_passes_and_reports_counts(shop):
    report = validate_dataset(shop)
    assert report.n_items == 200 and report.n_interactions == len(shop.interactions)
    assert report.items_without_image == [] and report.corrupt_images == {}


def test_missing_column_is_named(shop):
    ds = _copy(shop)
    ds.items = ds.items.drop(columns=["title"])
    with pytest.raises(DatasetError, match=r"items: missing column\(s\) \['title'\]"):
        validate_dataset(ds)


def test_duplicate_item_ids_are_listed(shop):
    ds = _copy(shop)
    ds.items.loc[5, "item_id"] = ds.items.loc[4, "item_id"]
    with pytest.raises(DatasetError, match=r"items: duplicate item_id 5"):
        validate_dataset(ds)


def test_naive_timestamps_are_rejected(shop):
    ds = _copy(shop)
    ds.interactions["event_timestamp"] = ds.interactions["event_timestamp"].dt.tz_localize(None)
    with pytest.raises(DatasetError, match=r"interactions.event_timestamp .* timezone-aware"):
        validate_dataset(ds)


def test_unknown_item_in_interactions_names_id_and_row(shop):
    ds = _copy(shop)
    ds.interactions.loc[7, "item_id"] = 99999
    with pytest.raises(DatasetError, match=r"unknown item_id 99999 \(rows 7\)"):
        validate_dataset(ds)


def test_unknown_user_and_bad_label(shop):
    ds = _copy(shop)
    ds.interactions.loc[3, "user_id"] = 424242
    with pytest.raises(DatasetError, match=r"unknown user_id 424242"):
        validate_dataset(ds)
    ds = _copy(shop)
    ds.interactions.loc[2, "label"] = 3
    with pytest.raises(DatasetError, match=r"label must be 0 or 1; rows 2"):
        validate_dataset(ds)


def test_zero_id_is_valid_and_mapped_off_the_padding_code(shop):
    from moon_features.idmap import DatasetIds

    ds = _copy(shop)
    old = ds.items.loc[0, "item_id"]
    ds.items.loc[0, "item_id"] = 0
    ds.interactions.loc[ds.interactions["item_id"] == old, "item_id"] = 0
    validate_dataset(ds)
    codes = DatasetIds.fit(ds).items.encode(ds.items["item_id"])
    assert codes.min() == 1 and len(set(codes)) == len(codes)  # 0 stays the padding code


def test_missing_image_is_flagged_and_corrupt_image_reported_by_id(shop, shop_dir, tmp_path):
    shutil.copytree(shop_dir, tmp_path, dirs_exist_ok=True)
    ds = _copy(shop)
    ds.root = tmp_path
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image at all")
    ds.items.loc[0, "image_path"] = None
    ds.items.loc[1, "image_path"] = "images/broken.png"
    ds.items.loc[2, "image_path"] = "images/does-not-exist.png"
    report = validate_dataset(ds)
    item_ids = ds.items["item_id"].tolist()
    assert report.items_without_image == [item_ids[0]]
    assert set(report.corrupt_images) == {item_ids[1], item_ids[2]}
    assert "cannot decode" in report.corrupt_images[item_ids[1]]
    assert report.corrupt_images[item_ids[2]] == "file not found"


def test_load_rejects_a_folder_that_is_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="missing dataset.json"):
        load_dataset(tmp_path)


def test_save_load_round_trip_keeps_utc_microseconds(shop, tmp_path):
    save_dataset(_copy(shop), tmp_path)
    back = load_dataset(tmp_path)
    assert back.interactions["event_timestamp"].dtype == pd.DatetimeTZDtype("us", "UTC")
    pd.testing.assert_frame_equal(back.items, shop.items)
