"""Training sets from Feast: entity rows -> point-in-time features -> CTRData (no per-row Python).

The profile and sequence features come from `get_historical_features` (an as-of join, so no
future event leaks). MOON embeddings are content features of fixed encoder versions, valid
from the item's first_seen: target and history items alike are gathered from the spec's views'
table (item id -> the views' vectors, concatenated in the spec's order). That table, and the item attribute codes of history positions, are
each item's newest row read through Feast's offline store (`latest_item_rows`): exactly what
`feast materialize` puts online for serving.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureStore

from ctr_models.data import CTRData

from ..batching import history_arrays, pad_ragged, row_arrays, sequence_arrays
from ..errors import MoonFeaturesError
from ..spec import EMBEDDING_FIELD, ITEM_PROFILE_VIEW, EmbeddingSpec, FeatureSpec
from .ray_retrieval import is_ray_job, ray_job_to_arrow

ROW_ID = "__row_id"
# every row of an item source: its timestamps are first-seen / encoder times, never before 1970
ALL_TIME = (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2200, 1, 1, tzinfo=timezone.utc))
ENTITY_COLUMNS = ("user_id", "item_id", "event_timestamp")


class TrainingSetError(MoonFeaturesError, ValueError):
    """Entity rows or offline sources cannot make a training set; the message says why."""


def latest_item_rows(store: FeatureStore, view: str, columns: list[str]) -> pa.Table:
    """The newest row of each item of an item view (item_id, columns), read through the offline
    store with `pull_latest_from_table_or_query`: what `feast materialize` writes online, so
    training sees exactly the values serving reads, from any offline store Feast supports."""
    source = store.get_feature_view(view).batch_source
    job = store.provider.offline_store.pull_latest_from_table_or_query(
        config=store.config, data_source=source, join_key_columns=["item_id"], feature_name_columns=columns,
        timestamp_field=source.timestamp_field, created_timestamp_column=source.created_timestamp_column or None,
        start_date=ALL_TIME[0], end_date=ALL_TIME[1])
    return job.to_arrow().select(["item_id", *columns])


def item_attribute_table(store: FeatureStore, spec: FeatureSpec, attribute: str) -> np.ndarray:
    """codes[item_id] of an item attribute (0 for unknown items), for the history positions."""
    table = latest_item_rows(store, ITEM_PROFILE_VIEW, [attribute])
    codes = np.zeros(spec.max_item_id + 1, dtype=np.int64)
    ids = table.column("item_id").to_numpy()
    keep = ids <= spec.max_item_id
    codes[ids[keep]] = table.column(attribute).fill_null(0).to_numpy()[keep]
    return codes


def moon_table(store: FeatureStore, spec: FeatureSpec) -> np.ndarray:
    """float32 [max_item_id + 1, D]: row i = item i's vectors in the spec's embedding views,
    concatenated in the spec's order (D = the views' dimensions summed), row 0 = zeros. An item
    a view lacks has zeros in that view's part, as serving reads it."""
    if not spec.embeddings:
        raise TrainingSetError("the spec pins no embedding version; build the repo after `encoder embed`")
    return np.concatenate([view_table(store, spec, emb) for emb in spec.embeddings], axis=1)


def view_table(store: FeatureStore, spec: FeatureSpec, emb: EmbeddingSpec) -> np.ndarray:
    """float32 [max_item_id + 1, emb.dim]: one embedding view's vectors by item id, zeros where absent."""
    table = latest_item_rows(store, emb.view_name, [EMBEDDING_FIELD])
    vectors = list_column_to_matrix(table.column(EMBEDDING_FIELD), emb.dim, what=emb.view_name)
    out = np.zeros((spec.max_item_id + 1, emb.dim), dtype=np.float32)
    ids = table.column("item_id").to_numpy()
    keep = ids <= spec.max_item_id
    out[ids[keep]] = vectors[keep]
    return out


def list_column_to_matrix(column: pa.ChunkedArray, width: int, what: str) -> np.ndarray:
    """A list<float> column of fixed width as a float32 [n, width] matrix, without Python loops."""
    column = column.combine_chunks()
    lengths = pc.list_value_length(column).fill_null(0).to_numpy()
    if (lengths != width).any():
        bad = int(np.flatnonzero(lengths != width)[0])
        raise TrainingSetError(f"{what}: row {bad} has length {lengths[bad]}, expected {width}")
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, width)


def ragged_parts(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A list<int64> column as (values, starts, lengths), the ragged form `batching` pads."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.list_value_length(column).fill_null(0).to_numpy().astype(np.int64)  # a null row: length 0
    # offsets index column.values (absolute, also for a sliced array)
    starts = column.offsets.to_numpy()[:-1].astype(np.int64) if len(column) else np.zeros(0, np.int64)
    return column.values.to_numpy(zero_copy_only=False), starts, lengths


def pad_sequences(column: pa.ChunkedArray | pa.Array, max_len: int, max_id: int) -> tuple[np.ndarray, np.ndarray]:
    """list<int64> -> (int64 [n, max_len] left-aligned and zero-padded, lengths [n]); see batching.pad_ragged."""
    return pad_ragged(*ragged_parts(column), max_len, max_id)


def feature_columns(table: pa.Table, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """The per-row columns `batching.row_arrays` reads (the spec's id, categorical, dense and
    context fields), as numpy with nulls filled (0 / 0.0)."""
    columns = {}
    for f in spec.fields():
        if f.kind in ("id", "categorical"):
            columns[f.name] = table.column(f.name).fill_null(0).to_numpy()
        elif f.kind == "dense":
            columns[f.name] = table.column(f.name).fill_null(0.0).to_numpy()
        elif f.kind == "context":  # the entity rows' raw values, coded as serving codes a request's
            columns[f.name] = f.encode(table.column(f.name).to_pandas())
    return columns


def arrays_from_features(table: pa.Table, spec: FeatureSpec, attribute_codes: np.ndarray | None) -> dict:
    """Model arrays from a feature table (the historical join's output)."""
    arrays = {**row_arrays(feature_columns(table, spec), spec),
              **history_arrays(*ragged_parts(table.column("hist_item_ids")), spec, attribute_codes)}
    for seq in spec.sequences:  # the behaviour sequences besides the main one, item ids only
        arrays.update(sequence_arrays(*ragged_parts(table.column(seq.ids_column)), spec, seq))
    if "label" in table.column_names:
        arrays["label"] = table.column("label").to_numpy().astype(np.float32)
    return arrays


def historical_table(store: FeatureStore, spec: FeatureSpec, entity_rows: pd.DataFrame) -> pa.Table:
    """get_historical_features for the spec's features, back in the entity rows' order."""
    missing = [c for c in ENTITY_COLUMNS if c not in entity_rows.columns]
    if missing:
        raise TrainingSetError(f"entity rows lack column(s) {missing}; need {list(ENTITY_COLUMNS)} (+ label)")
    missing = [f.name for f in spec.context if f.name not in entity_rows.columns]
    if missing:
        raise TrainingSetError(f"entity rows lack the context column(s) {missing} the spec trains on: add the "
                               "interaction log's values (null = unknown), or rebuild the repo without "
                               "`features build --context-columns`")
    rows = entity_rows.reset_index(drop=True).assign(**{ROW_ID: np.arange(len(entity_rows))})
    refs = [r for r in spec.feature_refs() if not r.endswith(f":{EMBEDDING_FIELD}")]  # gathered by moon_table
    job = store.get_historical_features(entity_df=rows, features=refs)
    if is_ray_job(job):  # Feast's Ray offline store (feature_store.ray.yaml): see ray_retrieval.py
        lists = ["hist_item_ids"] + [seq.ids_column for seq in spec.sequences]
        table = ray_job_to_arrow(job, lists)
    else:
        table = job.to_arrow()
    # Feast's offline stores do not keep the entity order; the caller's order is the contract.
    return table.take(pc.sort_indices(table, [(ROW_ID, "ascending")]))


def training_data(store: FeatureStore, spec: FeatureSpec, entity_rows: pd.DataFrame,
                  use_moon: bool = True) -> CTRData:
    """The point-in-time training set for a model over `spec` (with or without MOON embeddings)."""
    inputs = spec.model_inputs(use_moon=use_moon)
    table = historical_table(store, spec, entity_rows)
    codes = item_attribute_table(store, spec, spec.sequence_attribute) if spec.sequence_attribute else None
    arrays = arrays_from_features(table, spec, codes)
    table_moon = moon_table(store, spec) if inputs.moon_dim else None
    return CTRData(arrays, inputs, moon_table=table_moon)
