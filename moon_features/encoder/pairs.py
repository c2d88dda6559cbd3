"""Behaviour positives: items engaged by the same user close in time (MOON's co-engagement)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def co_engagement_pairs(interactions: pd.DataFrame, item_ids, window: int = 3, max_gap_s: float = 86400.0,
                        positive_only: bool = True) -> pd.DataFrame:
    """Directed pairs (item_a earlier, item_b later) of a user's positively labelled items that
    are at most `window` positions and `max_gap_s` seconds apart. Returns item_a, item_b,
    event_timestamp (of item_b), deduplicated."""
    df = interactions
    if positive_only and "label" in df.columns:
        df = df[df["label"].astype(bool)]
    df = df[df["item_id"].isin(set(np.asarray(item_ids).tolist()))]
    df = df.sort_values(["user_id", "event_timestamp", "item_id"], kind="mergesort")
    users = df["user_id"].to_numpy()
    items = df["item_id"].to_numpy(np.int64)
    ts = df["event_timestamp"].astype("int64").to_numpy() / 1e9 if len(df) else np.zeros(0)
    out = []
    for k in range(1, window + 1):
        same = users[k:] == users[:-k]
        close = (ts[k:] - ts[:-k]) <= max_gap_s
        keep = same & close & (items[k:] != items[:-k])
        out.append(pd.DataFrame({"item_a": items[:-k][keep], "item_b": items[k:][keep],
                                 "event_timestamp": df["event_timestamp"].to_numpy()[k:][keep]}))
    out = [o for o in out if len(o)]
    if not out:
        return pd.DataFrame({"item_a": pd.Series(dtype="int64"), "item_b": pd.Series(dtype="int64"),
                             "event_timestamp": pd.Series(dtype=df["event_timestamp"].dtype)})
    pairs = pd.concat(out, ignore_index=True)
    return pairs.drop_duplicates(["item_a", "item_b"]).reset_index(drop=True)


def symmetric(pairs: pd.DataFrame) -> np.ndarray:
    """(n, 2) array with both directions of every pair (co-engagement has no direction)."""
    a, b = pairs["item_a"].to_numpy(np.int64), pairs["item_b"].to_numpy(np.int64)
    both = np.unique(np.concatenate([np.stack([a, b], 1), np.stack([b, a], 1)]), axis=0)
    return both


def split_by_time(interactions: pd.DataFrame, holdout_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier (1 - f) of the log for training, the latest f held out for evaluation."""
    cut = interactions["event_timestamp"].quantile(1.0 - holdout_fraction)
    return interactions[interactions["event_timestamp"] < cut], interactions[interactions["event_timestamp"] >= cut]


def heldout_pairs(train: pd.DataFrame, test: pd.DataFrame, item_ids, window: int = 3, max_gap_s: float = 86400.0,
                  max_pairs: int | None = 2000, seed: int = 0, novel_only: bool = True) -> pd.DataFrame:
    """Co-engagement pairs of the held-out (later) period. With novel_only, only pairs that never
    occur (in either order) in the training period: the encoder cannot have seen them as positives."""
    test_pairs = co_engagement_pairs(test, item_ids, window, max_gap_s)
    if novel_only:
        seen = {tuple(p) for p in symmetric(co_engagement_pairs(train, item_ids, window, max_gap_s))}
        keep = [(a, b) not in seen for a, b in zip(test_pairs["item_a"], test_pairs["item_b"])]
        test_pairs = test_pairs[keep].reset_index(drop=True)
    if max_pairs is not None and len(test_pairs) > max_pairs:
        rows = np.sort(np.random.default_rng(seed).choice(len(test_pairs), max_pairs, replace=False))
        test_pairs = test_pairs.iloc[rows].reset_index(drop=True)
    return test_pairs
