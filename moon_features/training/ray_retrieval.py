"""Training sets through Feast's Ray offline store: its retrieval job, as the Arrow table DuckDB gives.

Feast 0.67's Ray offline store returns a one-element list feature (a behaviour sequence of one
item) as a bare scalar, and a missing one as NaN, so its own `to_arrow()` fails with "cannot mix
list and non-list" (measured on the demo shop). The rows are right; only the cell type is lost.
`ray_job_to_arrow` rebuilds the list cells from the job's DataFrame: a scalar x becomes [x], NaN
becomes null. Everything else is Feast's join, unchanged.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


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
