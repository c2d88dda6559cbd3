"""The global time split every CTR model is trained and judged on: train on the past, validate
and test on the future, the way a production model is refreshed.

It lives in the data layer, not in training, because the encoder must cut its own log at the
same point (`encoder train --before auto`) and the encoder may not import training.
"""
from __future__ import annotations

import pandas as pd

from .validate import DatasetError


def time_order(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["event_timestamp", "user_id", "item_id"], kind="stable").reset_index(drop=True)


def split_points(n: int, val_frac: float = 0.1, test_frac: float = 0.1) -> tuple[int, int]:
    """Rows [0, a) train, [a, b) validate, [b, n) test, of n rows in time order."""
    return int(n * (1 - val_frac - test_frac)), int(n * (1 - test_frac))


def time_split(rows: pd.DataFrame, val_frac: float = 0.1, test_frac: float = 0.1):
    """Sort by (time, user, item); the first part trains, the next validates, the last tests."""
    rows = time_order(rows)
    a, b = split_points(len(rows), val_frac, test_frac)
    return rows.iloc[:a], rows.iloc[a:b], rows.iloc[b:]


def training_period_end(interactions: pd.DataFrame) -> pd.Timestamp:
    """The last timestamp of the training split that `moon-features train --data` makes of this
    interaction log (every row is an entity row there), as a UTC timestamp.

    Only the timestamps matter: the split point is a row count, and the timestamp at that row
    of the time order is the same whatever the ids (raw or dense codes)."""
    ts = pd.to_datetime(interactions["event_timestamp"], utc=True).sort_values(kind="stable")
    a, _ = split_points(len(ts))
    if a == 0:
        raise DatasetError(f"the log has {len(ts)} interactions: too few for a training split "
                                  "(80% of the rows); pass an explicit date to --before")
    return ts.iloc[a - 1]
