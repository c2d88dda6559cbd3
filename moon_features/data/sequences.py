"""Point-in-time-correct behaviour sequences.

The table has one row per (user, whole second s with an event) holding the user's last L positive
items from before s (oldest first), plus one closing row per user one second after their last
event's second, holding everything: the latest state, which is what the online store serves. A
Feast as-of join of an entity row (user, t) picks the row at floor(t), so the current event and
later ones never leak into it.

Why whole seconds: Feast's Ray offline store floors every timestamp to the second before its
as-of join. Rows keyed on whole seconds, one per user and second, survive that flooring, so the
Ray store and DuckDB join the same rows. The price: events within one second of each other are
ties (none sees another), as events at the same instant always were.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..fields import EVENT_TYPE_COLUMN

SEQUENCE_COLUMNS = ("user_id", "event_timestamp", "hist_item_ids", "hist_len")
KEY_RESOLUTION = "s"  # sequence rows are keyed on whole seconds (see above)
CLOSING_ROW_DELAY = pd.Timedelta(seconds=1)


def _ragged_take(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate values[s:s+n] for every (s, n) without a Python loop; returns (flat, offsets)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    row_of = np.repeat(np.arange(len(lengths)), lengths)
    flat_idx = starts[row_of] + (np.arange(offsets[-1]) - offsets[row_of])
    return values[flat_idx], offsets


def build_sequences(interactions: pd.DataFrame, max_len: int = 50, event_types=None) -> pd.DataFrame:
    """Behaviour-sequence table from interactions (user_id, item_id, event_timestamp, label).

    Ties (several events in the same second) are ordered by time, then item_id, and none of them
    sees another. event_types: keep only the positives whose EVENT_TYPE_COLUMN is one of them (a
    sequence besides the main one, fields.SequenceSpec); the rows stay one per event second of
    every event, so a training row of any type joins the state before it.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    columns = ["user_id", "item_id", "event_timestamp", "label"] + ([EVENT_TYPE_COLUMN] if event_types else [])
    df = interactions[columns]
    df = df.sort_values(["user_id", "event_timestamp", "item_id"], kind="stable").reset_index(drop=True)
    seconds = df["event_timestamp"].dt.floor(KEY_RESOLUTION)
    users = df["user_id"].to_numpy()
    times = seconds.to_numpy()
    positive = df["label"].to_numpy() == 1
    if event_types:
        positive &= df[EVENT_TYPE_COLUMN].isin(list(event_types)).to_numpy()

    # Positives of all users in (user, time, item) order; each user's block is contiguous.
    pos_items = df["item_id"].to_numpy()[positive]
    pos_users = users[positive]
    pos_times = times[positive]

    # One row per distinct (user, time), plus the closing row per user.
    key = pd.DataFrame({"user_id": users, "event_timestamp": seconds}).drop_duplicates()
    last = key.groupby("user_id", sort=True)["event_timestamp"].max() + CLOSING_ROW_DELAY
    rows = pd.concat([key, last.reset_index()], ignore_index=True)
    rows = rows.sort_values(["user_id", "event_timestamp"], kind="stable").reset_index(drop=True)
    row_users = rows["user_id"].to_numpy()
    row_times = rows["event_timestamp"].to_numpy()

    # Positives strictly before t = positives whose (user, time) sorts before (row user, t).
    # Both tables are sorted by (user, time); a dense int64 key makes that one searchsorted.
    user_start = np.searchsorted(pos_users, row_users, side="left")
    user_end = np.searchsorted(pos_users, row_users, side="right")
    uniq_times, time_rank = np.unique(np.concatenate([pos_times, row_times]), return_inverse=True)
    stride = np.int64(len(uniq_times) + 1)
    pos_key = pos_users.astype(np.int64) * stride + time_rank[: len(pos_times)]
    row_key = row_users.astype(np.int64) * stride + time_rank[len(pos_times):]
    before = np.searchsorted(pos_key, row_key, side="left") - user_start
    before = np.clip(before, 0, user_end - user_start)
    lengths = np.minimum(before, max_len)
    starts = user_start + before - lengths
    flat, offsets = _ragged_take(pos_items, starts, lengths)
    rows["hist_item_ids"] = pd.Series(
        pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.int64())).to_pylist())
    rows["hist_len"] = lengths.astype(np.int64)
    return rows[list(SEQUENCE_COLUMNS)]


def sequence_as_of(sequences: pd.DataFrame, user_id: int, when: pd.Timestamp) -> list[int]:
    """The history a point-in-time join returns for (user, when): the latest row at or before it."""
    rows = sequences[(sequences["user_id"] == user_id) & (sequences["event_timestamp"] <= when)]
    if rows.empty:
        return []
    return list(rows.sort_values("event_timestamp").iloc[-1]["hist_item_ids"])


def history_matrix(users: np.ndarray, times: np.ndarray, items: np.ndarray, positive: np.ndarray,
                   max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """For events sorted by (user, time, item): each event's last `max_len` positive items strictly
    before its time, as (int64 [N, max_len] left-aligned and zero-padded, lengths [N]).

    The in-memory twin of `build_sequences` for benchmarks and the lab, which need one row per event
    (equal to it when the times are whole seconds, as the shop's and MovieLens' are).
    """
    hist = np.zeros((len(users), max_len), np.int64)
    hist_len = np.zeros(len(users), np.int64)
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    steps = np.arange(max_len)
    for a, b in zip(bounds[:-1], bounds[1:]):  # one numpy pass per user
        p_ts, p_it = times[a:b][positive[a:b]], items[a:b][positive[a:b]]
        c = np.searchsorted(p_ts, times[a:b], side="left")  # positives strictly before the event
        start = np.maximum(c - max_len, 0)
        n = c - start
        if len(p_it):
            idx = np.minimum(start[:, None] + steps, len(p_it) - 1)
            hist[a:b] = np.where(steps < n[:, None], p_it[idx], 0)
        hist_len[a:b] = n
    return hist, hist_len
