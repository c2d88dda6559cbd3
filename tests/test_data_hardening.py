"""Bad data through the commands a user runs (issue #16): `data validate` and
`materialize-embeddings` answer every broken input with a one-line message and exit status 2,
never a traceback; Parquet files are written with page checksums and read with them verified."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from moon_features.cli import main as moon_cli
from moon_features.data.layout import INTERACTIONS_FILE, ITEMS_FILE, META_FILE, USERS_FILE
from moon_features.data.parquet_io import ParquetFileError, read_table, write_table


def run_cli(args, capsys) -> tuple[int, str]:
    code = moon_cli(args)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    return code, text


@pytest.fixture()
def shop_copy(shop_dir, tmp_path):
    dst = tmp_path / "shop"
    shutil.copytree(shop_dir, dst)
    return dst


# --- file-level damage (each applies to items, users and interactions) -----------------------
def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path):
    path.write_bytes(b"")


def _garbage(path):
    path.write_bytes(b"not a parquet file at all" * 10)


def _remove(path):
    path.unlink()


def _no_footer(path):
    data = path.read_bytes()
    path.write_bytes(data[:-8])


FILE_DAMAGE = {"truncated": _truncate, "empty": _empty, "garbage": _garbage, "missing": _remove,
               "no_footer": _no_footer}


@pytest.mark.parametrize("damage", sorted(FILE_DAMAGE))
@pytest.mark.parametrize("table", [ITEMS_FILE, USERS_FILE, INTERACTIONS_FILE])
def test_damaged_parquet_is_a_message(shop_copy, capsys, table, damage):
    FILE_DAMAGE[damage](shop_copy / table)
    code, text = run_cli(["data", "validate", str(shop_copy), "--skip-images"], capsys)
    assert code == 2 and "error:" in text and table.split(".")[0] in text


# --- column-level problems ---------------------------------------------------------------------
def _edit(table: str, change):
    def apply(root):
        df = pd.read_parquet(root / table)
        change(df).to_parquet(root / table, index=False)
    return apply


COLUMN_CASES = {
    "items_missing_title": (_edit(ITEMS_FILE, lambda d: d.drop(columns=["title"])), "title"),
    "items_missing_item_id": (_edit(ITEMS_FILE, lambda d: d.drop(columns=["item_id"])), "item_id"),
    "items_missing_price": (_edit(ITEMS_FILE, lambda d: d.drop(columns=["price"])), "price"),
    "users_missing_user_id": (_edit(USERS_FILE, lambda d: d.drop(columns=["user_id"])), "user_id"),
    "inter_missing_label": (_edit(INTERACTIONS_FILE, lambda d: d.drop(columns=["label"])), "label"),
    "inter_missing_ts": (_edit(INTERACTIONS_FILE, lambda d: d.drop(columns=["event_timestamp"])), "event_timestamp"),
    "string_item_ids": (_edit(ITEMS_FILE, lambda d: d.assign(item_id=d.item_id.astype(str))), "item_id"),
    "float_item_ids": (_edit(ITEMS_FILE, lambda d: d.assign(item_id=d.item_id.astype(float) + 0.5)), "item_id"),
    "string_user_ids": (_edit(USERS_FILE, lambda d: d.assign(user_id=d.user_id.astype(str))), "user_id"),
    "string_inter_item_ids": (_edit(INTERACTIONS_FILE, lambda d: d.assign(item_id=d.item_id.astype(str))),
                              "item_id"),
    "float_inter_user_ids": (_edit(INTERACTIONS_FILE, lambda d: d.assign(user_id=d.user_id.astype(float))),
                             "user_id"),
    "null_item_id": (_edit(ITEMS_FILE, lambda d: d.assign(item_id=d.item_id.where(d.index != 3))), "item_id"),
    # 0 and negative ids are valid since #19: features build maps them to dense codes (tests/test_byo_ids.py)
    "string_price": (_edit(ITEMS_FILE, lambda d: d.assign(price=d.price.astype(str))), "price"),
    "bool_price": (_edit(ITEMS_FILE, lambda d: d.assign(price=d.price > 10)), "price"),
    "nan_price": (_edit(ITEMS_FILE, lambda d: d.assign(price=d.price.where(d.index != 1))), "price"),
    "inf_price": (_edit(ITEMS_FILE, lambda d: d.assign(price=d.price.where(d.index != 1, np.inf))), "price"),
    "naive_ts": (_edit(INTERACTIONS_FILE, lambda d: d.assign(event_timestamp=d.event_timestamp.dt.tz_localize(None))),
                 "timezone"),
    "string_ts": (_edit(INTERACTIONS_FILE, lambda d: d.assign(event_timestamp=d.event_timestamp.astype(str))),
                  "event_timestamp"),
    "year_9999": (_edit(INTERACTIONS_FILE, lambda d: d.assign(event_timestamp=d.event_timestamp.where(
        d.index != 0, pd.Timestamp("9999-12-31", tz="UTC")))), "event_timestamp"),
    "label_2": (_edit(INTERACTIONS_FILE, lambda d: d.assign(label=d.label.where(d.index != 0, 2))), "label"),
    "label_text": (_edit(INTERACTIONS_FILE, lambda d: d.assign(label=d.label.astype(str))), "label"),
    "image_path_int": (_edit(ITEMS_FILE, lambda d: d.assign(image_path=7)), "image_path"),
    "no_items": (_edit(ITEMS_FILE, lambda d: d.iloc[:0]), "items"),
    "unknown_item": (_edit(INTERACTIONS_FILE, lambda d: d.assign(item_id=d.item_id.where(d.index != 5, 10**9))),
                     "unknown item_id"),
}


@pytest.mark.parametrize("case", sorted(COLUMN_CASES))
def test_bad_columns_are_a_message(shop_copy, capsys, case):
    damage, expected = COLUMN_CASES[case]
    damage(shop_copy)
    code, text = run_cli(["data", "validate", str(shop_copy), "--skip-images"], capsys)
    assert code == 2 and expected in text, text


# --- dataset.json -------------------------------------------------------------------------------
META_CASES = {
    "not_json": "{name: shop",
    "a_list": "[1, 2]",
    "unknown_field": json.dumps({"name": "x", "colour_bins": 3}),
    "no_name": json.dumps({"item_dense": ["price"]}),
    "dense_not_list": json.dumps({"name": "x", "item_dense": "price"}),
    "binary": "\udcff",
    "unknown_dense_column": json.dumps({"name": "x", "item_dense": ["weight"]}),
}


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_malformed_dataset_json_is_a_message(shop_copy, capsys, case):
    text = META_CASES[case]
    (shop_copy / META_FILE).write_bytes(text.encode("utf-8", "surrogateescape"))
    code, out = run_cli(["data", "validate", str(shop_copy), "--skip-images"], capsys)
    assert code == 2 and ("dataset.json" in out or "weight" in out), out


def test_missing_dataset_folder_is_a_message(tmp_path, capsys):
    code, text = run_cli(["data", "validate", str(tmp_path / "nope")], capsys)
    assert code == 2 and "not a moon-features dataset" in text


# --- checksums and row counts ----------------------------------------------------------------
def test_written_files_carry_page_checksums_and_a_flipped_bit_is_caught(tmp_path):
    df = pd.DataFrame({"item_id": np.arange(1, 5001, dtype=np.int64), "price": np.linspace(1, 2, 5000)})
    path = write_table(df, tmp_path / "t.parquet", compression="none")
    assert read_table(path).num_rows == 5000
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x10  # inside a data page of the price column
    path.write_bytes(bytes(data))
    with pytest.raises(ParquetFileError, match="corrupt"):
        read_table(path)


def test_project_writes_checksums(shop_copy, tmp_path):
    from moon_features.data.layout import load_dataset, save_dataset

    save_dataset(load_dataset(shop_copy), tmp_path / "again")
    meta = pq.ParquetFile(tmp_path / "again" / ITEMS_FILE).metadata
    assert meta.num_rows == 200
    # A flipped byte in the middle of the items file is refused, not read as different values.
    path = tmp_path / "again" / INTERACTIONS_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(Exception) as err:
        load_dataset(tmp_path / "again")
    assert type(err.value).__name__ in ("DatasetError", "ParquetFileError")


# --- materialize-embeddings --------------------------------------------------------------------
@pytest.fixture(scope="module")
def emb_repo_base(tmp_path_factory):
    from fixtures.store_repo import build_repo
    from moon_features.store.repo import apply_repo

    repo, spec = build_repo(tmp_path_factory.mktemp("emb"), online="sqlite", n_items=40, dim=16, max_len=5)
    apply_repo(repo)
    source = next((repo / "data").glob("item_moon_embedding_v1*.parquet"))
    return repo, source


@pytest.fixture()
def emb_repo(emb_repo_base, tmp_path):
    """The module's repo; its embedding source is restored after each test damages it."""
    repo, source = emb_repo_base
    backup = tmp_path / "backup.parquet"
    shutil.copy(source, backup)
    yield repo, source
    shutil.copy(backup, source)


def _emb_edit(change):
    def apply(path):
        pq.write_table(change(pq.read_table(path)), path)
    return apply


EMB_CASES = {
    "missing": _remove,
    "empty": _empty,
    "truncated": _truncate,
    "garbage": _garbage,
    "no_footer": _no_footer,
    "no_embedding_column": _emb_edit(lambda t: t.drop_columns(["embedding"])),
    "no_item_id": _emb_edit(lambda t: t.drop_columns(["item_id"])),
    "string_ids": _emb_edit(lambda t: t.set_column(t.schema.get_field_index("item_id"), "item_id",
                                                   pa.array([str(v) for v in t["item_id"].to_pylist()]))),
    "float_ids": _emb_edit(lambda t: t.set_column(t.schema.get_field_index("item_id"), "item_id",
                                                  t["item_id"].cast(pa.float64()))),
    "string_vectors": _emb_edit(lambda t: t.set_column(t.schema.get_field_index("embedding"), "embedding",
                                                       pa.array([[str(x) for x in v] for v in
                                                                 t["embedding"].to_pylist()]))),
    "wrong_dim": _emb_edit(lambda t: t.set_column(t.schema.get_field_index("embedding"), "embedding",
                                                  pa.array([v[:3] for v in t["embedding"].to_pylist()],
                                                           pa.list_(pa.float32())))),
    "nan_vector": _emb_edit(lambda t: t.set_column(t.schema.get_field_index("embedding"), "embedding",
                                                   pa.array([[float("nan")] * len(v) for v in
                                                             t["embedding"].to_pylist()], pa.list_(pa.float32())))),
    "string_ts": _emb_edit(lambda t: t.set_column(t.schema.get_field_index("event_timestamp"), "event_timestamp",
                                                  t["event_timestamp"].cast(pa.string()))),
}


@pytest.mark.parametrize("case", sorted(EMB_CASES))
def test_materialize_embeddings_bad_source_is_a_message(emb_repo, capsys, case):
    repo, source = emb_repo
    EMB_CASES[case](source)
    code, text = run_cli(["materialize-embeddings", "--repo", str(repo), "--quiet"], capsys)
    assert code == 2 and "error:" in text, text


def test_materialize_embeddings_bad_repo_is_a_message(tmp_path, capsys):
    code, text = run_cli(["materialize-embeddings", "--repo", str(tmp_path / "nope")], capsys)
    assert code == 2 and "feature_store.yaml" in text
    (tmp_path / "feature_store.yaml").write_text("project: [unclosed\n")
    code, text = run_cli(["materialize-embeddings", "--repo", str(tmp_path)], capsys)
    assert code == 2 and "error:" in text


def test_materialize_embeddings_good_source_still_works_and_marks_the_view(emb_repo, capsys):
    from moon_features.store.markers import MarkerStore
    from moon_features.store.repo import open_store

    repo, _ = emb_repo
    code, text = run_cli(["materialize-embeddings", "--repo", str(repo), "--quiet"], capsys)
    assert code == 0
    assert "item_moon_embedding_v1" in MarkerStore(open_store(repo).config).read()
