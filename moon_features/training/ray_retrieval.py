"""Training sets through Feast's Ray offline store: its retrieval job, as the Arrow table DuckDB gives.

Feast 0.67's Ray offline store returns a one-element list feature (a behaviour sequence of one
item) as a bare scalar, and a missing one as NaN, so its own `to_arrow()` fails with "cannot mix
list and non-list" (measured on the demo shop). The rows are right; only the cell type is lost.
`ray_job_to_arrow` rebuilds the list cells from the job's DataFrame: a scalar x becomes [x], NaN
becomes null. Everything else is Feast's join, unchanged.
"""
from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pandas as pd
import pyarrow as pa

from ..errors import MoonFeaturesError

RAY_STORE_TYPE = "feast.offline_stores.contrib.ray_offline_store.ray.RayOfflineStore"


def is_ray_job(job) -> bool:
    return type(job).__name__ == "RayRetrievalJob"


def _list_cell(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return [value]


def ray_job_to_arrow(job, list_columns: list[str]) -> pa.Table:
    """The job's result with `list_columns` repaired (see module doc)."""
    df: pd.DataFrame = job.to_df()
    for name in list_columns:
        if name in df.columns:
            df[name] = [_list_cell(v) for v in df[name].tolist()]
    table = pa.Table.from_pandas(df, preserve_index=False)
    for name in list_columns:  # an all-null column would come back untyped
        if name in table.column_names and pa.types.is_null(table.schema.field(name).type):
            i = table.column_names.index(name)
            table = table.set_column(i, name, pa.nulls(len(table), pa.list_(pa.int64())))
    return table


class RayPointInTimeError(MoonFeaturesError, ValueError):
    """Feast's Ray offline store would join these rows wrongly (it floors timestamps to seconds)."""


def is_ray_store(store) -> bool:
    return getattr(store.config.offline_store, "type", "") in ("ray", RAY_STORE_TYPE)


def check_second_resolution(path: str, view: str, key: str = "user_id") -> None:
    """Refuse a source with two rows of one entity inside one second.

    Feast 0.67's Ray offline store floors feature timestamps to whole seconds before its as-of
    join. Two rows of an entity in one second then tie, the join takes the later one, and a
    training row at t can see a row stamped after t: for behaviour sequences (a closing row at
    t + 1 us holds the event at t) that is the label itself leaking into the history.
    """

    table = pq.read_table(path, columns=[key, "event_timestamp"])
    seconds = pc.divide(pc.cast(pc.cast(table["event_timestamp"], pa.timestamp("us")), pa.int64()), 1_000_000)
    pairs = pa.table({"k": table[key], "s": seconds}).group_by(["k", "s"]).aggregate([("k", "count")])
    ties = pairs.filter(pc.greater(pairs["k_count"], 1))
    if len(ties):
        raise RayPointInTimeError(
            f"{view}: {len(ties):,} (entity, second) pairs hold more than one row (e.g. {key} "
            f"{ties['k'][0].as_py()}); Feast's Ray offline store floors timestamps to seconds and would join "
            "the later row, leaking future events into training rows. Use the DuckDB offline store "
            "(feature_store.yaml) for this repo, or rebuild the source with rows at least 1 s apart.")
