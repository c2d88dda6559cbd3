"""Reading and writing the project's Parquet files with their integrity checked.

* Written with page checksums (CRC32 of every data page, `write_page_checksum=True`).
* Read with the checksums verified where a file has them (`page_checksum_verification=True`):
  a flipped bit in a page is an error, not a silently different value.
* The rows read are compared with the row count in the file's footer: a reader that stops
  early (one run of a bit-flipped file dropped a row) is an error too.
* Everything a bad file can raise (missing, empty, truncated, not Parquet, a missing column)
  becomes a ParquetFileError naming the file and what to do, never a traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MoonFeaturesError

MAX_REASON_CHARS = 200


class ParquetFileError(MoonFeaturesError, ValueError):
    """A Parquet file is missing, empty, truncated, corrupt or lacks a column; the message names it."""


def _broken(path: Path, exc: BaseException) -> ParquetFileError:
    reason = str(exc).strip().splitlines()[0][:MAX_REASON_CHARS] if str(exc).strip() else ""
    return ParquetFileError(f"{path} is not a readable Parquet file ({type(exc).__name__}: {reason}); it is "
                            "truncated or corrupt: write it again from its source")


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The file (or `columns` of it) as an Arrow table, checked as the module says."""
    path = Path(path)
    if not path.is_file():
        raise ParquetFileError(f"{path} does not exist (or is not a file)")
    if path.stat().st_size == 0:
        raise ParquetFileError(f"{path} is empty (0 bytes): write it again from its source")
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        names = pf.schema_arrow.names
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise ParquetFileError(f"{path}: missing column(s) {missing}; it has {names[:20]}")
        expected = pf.metadata.num_rows
        table = pf.read(columns=list(columns) if columns is not None else None)
    except ParquetFileError:
        raise
    except (pa.ArrowException, OSError, ValueError, IndexError, KeyError, TypeError) as e:
        raise _broken(path, e) from None
    if table.num_rows != expected:
        raise ParquetFileError(f"{path}: read {table.num_rows} rows but its footer records {expected}; the file "
                               "is corrupt: write it again from its source")
    return table


def read_frame(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """read_table as a pandas DataFrame."""
    table = read_table(path, columns)
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as e:
        raise _broken(Path(path), e) from None


def write_table(data: pd.DataFrame | pa.Table, path: str | Path, **kwargs) -> Path:
    """Write a DataFrame (without its index) or a table, with page checksums."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    pq.write_table(table, path, write_page_checksum=True, **kwargs)
    return Path(path)
