"""Which interactions the encoder may learn from: `encoder train --before DATE | auto | ROWS.parquet`.

A leak-free encoder learns from the CTR model's training period only. The cut is where
`moon-features train` ends its training split, and `train` splits whatever rows it is given:
the log of `--data` ("auto"), or the entity rows of `--rows FILE` (give the encoder the same
file). Only the rows' timestamps matter, so raw ids and dense codes give the same cut.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..data.split import training_period_end
from .errors import EncoderError

ROWS_SUFFIXES = (".parquet", ".pq")
HOW = ("use a date (2024-03-01 or 2024-03-01T12:00), 'auto' (where `train --data` with the same --data ends "
       "its training split) or the Parquet file of entity rows given to `train --rows`")


def resolve_before(dataset, before):
    """`before` as a date; "auto": the last timestamp of the training split `moon-features train
    --data` makes of this log; a Parquet path: the same of the entity rows `train --rows` reads.
    Printed, so the user sees the date the encoder cut at."""
    text = before.strip() if isinstance(before, str) else None
    if text is None or not (text.lower() == "auto" or text.lower().endswith(ROWS_SUFFIXES)):
        return before
    if text.lower() == "auto":
        rows, source = dataset.interactions, "`train --data`"
    else:
        if not Path(text).is_file():
            raise EncoderError(f"--before {text}: no such file; {HOW}")
        rows, source = pd.read_parquet(text, columns=["event_timestamp"]), f"`train --rows {text}`"
    cut = training_period_end(rows)
    print(f"--before {text}: {cut.isoformat()} (the last timestamp of {source}'s training split; the encoder "
          "reads the interactions strictly before it)", flush=True)
    return cut


def interactions_before(dataset, before) -> object:
    """`dataset` with only the interactions strictly before `before` (a date / timestamp, UTC when
    naive); the catalogue is kept whole (every item is embedded, content is not a label)."""
    if before is None:
        return dataset
    try:
        cut = pd.Timestamp(before)
    except (ValueError, TypeError) as e:
        raise EncoderError(f"--before {before!r} is not a date; {HOW}") from e
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut
    ts = pd.to_datetime(dataset.interactions["event_timestamp"], utc=True)
    kept = dataset.interactions[ts < cut].reset_index(drop=True)
    if kept.empty:
        raise EncoderError(f"no interaction before {cut} (the log starts {ts.min()}); choose a later --before")
    return replace(dataset, interactions=kept)
