"""Preflight of an embedding view's Parquet source, before `materialize-embeddings` writes anything.

The bulk writer trusts its input's shape; a file that is missing, empty, truncated, bit-flipped
(page checksums, rows read vs the footer: data.parquet_io), lacks a column, or holds ids that are
text or floats would otherwise surface as a pyarrow traceback halfway through. Each becomes a
SourceCheckError naming the file and the fix. Vector dimensions and NaN / inf are checked by the
writer itself (EmbeddingValidationError), also before anything is written.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..data.parquet_io import ParquetFileError, read_table
from ..errors import MoonFeaturesError
from ..spec import EMBEDDING_FIELD, embedding_view_name


class SourceCheckError(MoonFeaturesError, ValueError):
    """An embedding view's offline source cannot be materialized as it is; the message says why."""


def embedding_source_path(store, fv) -> Path:
    path = Path(getattr(fv.batch_source, "path", "") or "")
    if not str(path):
        raise SourceCheckError(f"{fv.name}: its source is not a Parquet file; use `feast materialize` for it")
    return path if path.is_absolute() else Path(store.config.repo_path or ".") / path


def check_embedding_source(store, version: int) -> Path:
    """The source path of embedding view `version`, after checking it; SourceCheckError otherwise."""
    name = embedding_view_name(version)
    try:
        fv = store.get_feature_view(name)
    except Exception as e:  # Feast raises FeatureViewNotFoundException (and relatives) here
        raise SourceCheckError(f"{name} is not registered in project {store.config.project!r}; run "
                               "`moon-features features build` or `feast apply` first") from e
    path = embedding_source_path(store, fv)
    join_key, ts_field = fv.join_keys[0], fv.batch_source.timestamp_field
    try:
        table = read_table(path, [join_key, ts_field, EMBEDDING_FIELD])
    except ParquetFileError as e:
        raise SourceCheckError(f"{name}: {e}. Re-run `moon-features encoder embed` for version {version}") from None
    schema = table.schema
    if not pa.types.is_integer(schema.field(join_key).type):
        raise SourceCheckError(f"{path}: {join_key} must be int64 ids, got {schema.field(join_key).type}")
    if table.column(join_key).null_count:
        raise SourceCheckError(f"{path}: {join_key} is null in {table.column(join_key).null_count} rows")
    if not pa.types.is_timestamp(schema.field(ts_field).type):
        raise SourceCheckError(f"{path}: {ts_field} must be a timestamp (UTC), got {schema.field(ts_field).type}")
    kind = schema.field(EMBEDDING_FIELD).type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) \
            or not pa.types.is_floating(kind.value_type):
        raise SourceCheckError(f"{path}: {EMBEDDING_FIELD} must be a list of floats, got {kind}")
    return path
