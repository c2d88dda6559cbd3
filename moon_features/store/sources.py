"""Write the offline source tables of a repository from a dataset and its spec."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.layout import Dataset, to_microseconds
from ..data.parquet_io import write_table
from ..data.sequences import build_sequences
from ..spec import ITEM_PROFILE_VIEW, SEQUENCE_VIEW, USER_PROFILE_VIEW, FeatureSpec
from .definitions import source_path


def item_profile_table(ds: Dataset, spec: FeatureSpec) -> pd.DataFrame:
    out = pd.DataFrame({"item_id": ds.items["item_id"].astype("int64"), "event_timestamp": ds.items["first_seen"]})
    for f in spec.item_categorical:
        out[f.name] = f.encode(ds.items[f.name])
    for name in spec.item_dense:
        out[name] = ds.items[name].astype("float32")
    return out


def user_profile_table(ds: Dataset, spec: FeatureSpec) -> pd.DataFrame:
    # Profiles carry no time of their own: valid from the start of the log so that every
    # training row can see them.
    start = min(ds.interactions["event_timestamp"].min(), ds.items["first_seen"].min())
    out = pd.DataFrame({"user_id": ds.users["user_id"].astype("int64"),
                        "event_timestamp": ds.users["created"] if "created" in ds.users else start})
    for f in spec.user_categorical:
        out[f.name] = f.encode(ds.users[f.name])
    for name in spec.user_dense:
        out[name] = ds.users[name].astype("float32")
    return out


def write_sources(ds: Dataset, spec: FeatureSpec, data_dir: str | Path) -> dict[str, Path]:
    """Item and user profiles and behaviour sequences (the main one and spec.sequences) as Parquet;
    returns view name -> path."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        ITEM_PROFILE_VIEW: item_profile_table(ds, spec),
        USER_PROFILE_VIEW: user_profile_table(ds, spec),
        SEQUENCE_VIEW: build_sequences(ds.interactions, spec.max_len),
    }
    for q in spec.sequences:  # each sequence besides the main one: its own view, its own column names
        table = build_sequences(ds.interactions, spec.max_len, q.event_types)
        tables[q.view_name] = table.rename(columns={"hist_item_ids": q.ids_column, "hist_len": q.len_column})
    paths = {}
    for view, table in tables.items():
        paths[view] = source_path(data_dir, view)
        write_table(to_microseconds(table), paths[view])  # with page checksums (data.parquet_io)
    return paths


def entity_rows(ds: Dataset, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """Training entity rows (user_id, item_id, event_timestamp, label) from the interaction log,
    plus the raw columns of the spec's context features (they ride along on the rows)."""
    cols = ["user_id", "item_id", "event_timestamp", "label"] + [f.name for f in (spec.context if spec else ())]
    return ds.interactions[cols].astype({"user_id": np.int64, "item_id": np.int64}).reset_index(drop=True)
