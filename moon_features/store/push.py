"""Real-time behaviour sequences: append a user's new positive event through Feast push.

The online row of `user_behavior_sequence` is the user's latest state: the last L positive
items, oldest first (the offline table's closing row has the same meaning). Appending reads
that row with its timestamp, appends the item, keeps the last L and pushes the row through
the view's PushSource, so every online store Feast supports gets it in Feast's own format.

Ordering: Feast ignores a pushed row that is not strictly newer than the stored one. An event
that arrives late (its time <= the stored row's) is still appended, at the end, and the row is
stamped 1 microsecond after the stored time, so it is never silently dropped. Appends for one
user are read-modify-write: run them from one consumer per user (e.g. a stream partitioned by
user id); two concurrent appends for the same user can lose one of the events.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from ..spec import SEQUENCE_PUSH_SOURCE, SEQUENCE_VIEW, FeatureSpec

ONE_MICROSECOND = timedelta(microseconds=1)


def current_sequence(store: FeatureStore, user_id: int) -> tuple[list[int], datetime | None]:
    """The user's stored history (oldest first) and the row's event time; ([], None) if none."""
    fv = store.get_feature_view(SEQUENCE_VIEW)
    key = EntityKey(join_keys=[fv.join_keys[0]], entity_values=[Value(int64_val=int(user_id))])
    provider = store._get_provider()
    ((ts, values),) = provider.online_read(store.config, fv, [key], ["hist_item_ids"])
    if not values or values.get("hist_item_ids") is None or values["hist_item_ids"].WhichOneof("val") is None:
        return [], None
    return list(values["hist_item_ids"].int64_list_val.val), ts


def append_positive_event(store: FeatureStore, spec: FeatureSpec, user_id: int, item_id: int,
                          event_timestamp: datetime | pd.Timestamp) -> dict:
    """Append `item_id` to the user's online sequence; returns the row pushed.

    Returns {"user_id", "hist_item_ids" (np.int64, oldest first), "hist_len", "event_timestamp"}.
    Raises ValueError for a naive timestamp (its time zone would be a guess).
    """
    when = pd.Timestamp(event_timestamp)
    if when.tzinfo is None:
        raise ValueError(f"event_timestamp {event_timestamp!r} has no time zone; pass a UTC timestamp")
    when = when.tz_convert("UTC").as_unit("us")
    history, stored_at = current_sequence(store, user_id)
    history = (history + [int(item_id)])[-spec.max_len:]
    if stored_at is not None and when <= pd.Timestamp(stored_at).tz_convert("UTC"):
        when = pd.Timestamp(stored_at).tz_convert("UTC").as_unit("us") + ONE_MICROSECOND
    row = pd.DataFrame({
        "user_id": pd.Series([int(user_id)], dtype="int64"),
        "event_timestamp": pd.Series([when]),
        "hist_item_ids": [history],
        "hist_len": pd.Series([len(history)], dtype="int64"),
    })
    store.push(SEQUENCE_PUSH_SOURCE, row, to=PushMode.ONLINE)
    return {"user_id": int(user_id), "hist_item_ids": np.asarray(history, dtype=np.int64),
            "hist_len": len(history), "event_timestamp": when.to_pydatetime().astimezone(timezone.utc)}
