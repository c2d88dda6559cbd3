"""Refuse embedding rows before anything is written: wrong dimension, NaN / inf, non-float values.

The dimension and version of an embedding view are recorded as tags on the registered view
(definitions.EMBEDDING_DIM_TAG / EMBEDDING_VERSION_TAG); every writer checks against them.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import EmbeddingValidationError

_SHOWN = 5


def _name(ids) -> str:
    ids = list(ids)
    shown = ", ".join(str(i) for i in ids[:_SHOWN])
    return f"{shown} and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else shown


def embedding_matrix(item_ids: np.ndarray, column: pa.Array | pa.ChunkedArray, dim: int,
                     view: str = "embedding view") -> np.ndarray:
    """A [n, dim] float32 matrix from an Arrow list column, or EmbeddingValidationError naming items.

    Accepts list / large_list / fixed_size_list of float32 or float64 (float64 is narrowed the
    way Feast narrows it for Array(Float32)). Integers, strings and nulls are refused: a vector
    of ints is almost always a bug upstream (ids written in place of embeddings).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    item_ids = np.asarray(item_ids)
    t = column.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise EmbeddingValidationError(
            f"{view}: the embedding column is {t}, not a list of floats (items {_name(item_ids)})", item_ids)
    if not pa.types.is_floating(t.value_type) or pa.types.is_float16(t.value_type):
        raise EmbeddingValidationError(
            f"{view}: embedding values are {t.value_type}, not float32/float64 "
            f"(items {_name(item_ids)}); write the vectors as float32", item_ids)

    nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if nulls.any():
        bad = item_ids[nulls]
        raise EmbeddingValidationError(f"{view}: missing embedding for items {_name(bad)}", bad)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    wrong = lengths != dim
    if wrong.any():
        bad = item_ids[wrong]
        got = sorted(set(int(x) for x in lengths[wrong]))[:3]
        raise EmbeddingValidationError(
            f"{view}: expected vectors of dimension {dim}, got length {got} for items {_name(bad)}", bad)
    flat = column.flatten()
    values = flat.to_numpy(zero_copy_only=False)
    if flat.null_count:  # a null inside a vector arrives as NaN here and is named below
        values = np.where(np.asarray(flat.is_null().to_numpy(zero_copy_only=False), dtype=bool), np.nan, values)
    matrix = values.reshape(len(column), dim)
    return check_finite(item_ids, matrix, dim, view)


def check_finite(item_ids: np.ndarray, matrix: np.ndarray, dim: int, view: str = "embedding view") -> np.ndarray:
    """float32 [n, dim] with every value finite, else EmbeddingValidationError naming the items."""
    item_ids = np.asarray(item_ids)
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise EmbeddingValidationError(
            f"{view}: expected vectors of dimension {dim}, got an array of shape {matrix.shape} "
            f"(items {_name(item_ids)})", item_ids)
    if not np.issubdtype(matrix.dtype, np.floating):
        raise EmbeddingValidationError(
            f"{view}: embedding values are {matrix.dtype}, not floats (items {_name(item_ids)})", item_ids)
    with np.errstate(over="ignore"):
        narrowed = matrix.astype(np.float32, copy=False)
    bad_rows = ~np.isfinite(narrowed).all(axis=1)
    if bad_rows.any():
        bad = item_ids[bad_rows]
        raise EmbeddingValidationError(
            f"{view}: NaN or infinite values (or float64 values too large for float32) in the "
            f"embeddings of items {_name(bad)}", bad)
    return narrowed
