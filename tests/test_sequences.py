"""Behaviour sequences are point-in-time correct: no current or future event leaks."""
from __future__ import annotations

import pandas as pd
import pytest

from moon_features.data.sequences import build_sequences, sequence_as_of

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def _log(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_timestamp", "label"])


def brute_force_history(inter, user, when, max_len):
    past = inter[(inter.user_id == user) & (inter.event_timestamp < when) & (inter.label == 1)]
    return past.sort_values(["event_timestamp", "item_id"])["item_id"].tolist()[-max_len:]


def test_every_event_sees_exactly_the_positives_strictly_before_it(shop):
    inter = shop.interactions
    seq = build_sequences(inter, max_len=5)
    for user in inter["user_id"].unique()[:15]:
        for when in inter.loc[inter.user_id == user, "event_timestamp"]:
            assert sequence_as_of(seq, user, when) == brute_force_history(inter, user, when, 5)


def test_current_and_future_events_never_leak():
    inter = _log([
        (1, 10, T0, 1),
        (1, 11, T0 + pd.Timedelta("1h"), 1),
        (1, 12, T0 + pd.Timedelta("1h"), 1),  # same time as 11: neither sees the other
        (1, 13, T0 + pd.Timedelta("2h"), 0),
        (1, 14, T0 + pd.Timedelta("3h"), 1),
    ])
    seq = build_sequences(inter, max_len=10)
    assert sequence_as_of(seq, 1, T0) == []
    assert sequence_as_of(seq, 1, T0 + pd.Timedelta("1h")) == [10]
    assert sequence_as_of(seq, 1, T0 + pd.Timedelta("2h")) == [10, 11, 12]  # ties in item-id order
    assert sequence_as_of(seq, 1, T0 + pd.Timedelta("3h")) == [10, 11, 12]  # negatives never enter
    # Serving state: the closing row after the last event holds everything.
    assert sequence_as_of(seq, 1, T0 + pd.Timedelta("1d")) == [10, 11, 12, 14]


def test_adding_a_future_event_changes_no_earlier_row(shop):
    inter = shop.interactions
    seq = build_sequences(inter, max_len=20)
    user = int(inter["user_id"].iloc[0])
    late = inter["event_timestamp"].max() + pd.Timedelta("1D")
    extra = _log([(user, int(inter["item_id"].iloc[0]), late, 1)])
    seq2 = build_sequences(pd.concat([inter, extra], ignore_index=True), max_len=20)
    before = seq2[seq2.event_timestamp <= late]
    merged = seq.merge(before, on=["user_id", "event_timestamp"], suffixes=("", "_new"))
    assert len(merged) == len(seq) - 1  # all rows but the user's old closing row
    assert (merged["hist_len"] == merged["hist_len_new"]).all()


def test_only_the_last_l_are_kept_oldest_first():
    inter = _log([(7, i, T0 + pd.Timedelta(minutes=i), 1) for i in range(1, 9)])
    seq = build_sequences(inter, max_len=3)
    assert sequence_as_of(seq, 7, T0 + pd.Timedelta(minutes=8)) == [5, 6, 7]
    assert seq["hist_len"].max() == 3


def test_max_len_must_be_positive():
    with pytest.raises(ValueError, match="max_len"):
        build_sequences(_log([]), max_len=0)


def test_rows_are_whole_seconds_so_flooring_to_seconds_changes_nothing():
    """Feast's Ray offline store floors timestamps to seconds: the table must survive that (one row
    per user and second), and events within one second are ties that never see each other."""
    ms = lambda k: T0 + pd.Timedelta(milliseconds=k)  # noqa: E731
    inter = _log([(1, 10, ms(0), 1), (1, 11, ms(200), 1), (1, 12, ms(900), 0), (1, 13, ms(1500), 1),
                  (2, 20, ms(999), 1)])
    seq = build_sequences(inter, max_len=10)
    ts = seq["event_timestamp"]
    assert (ts == ts.dt.floor("s")).all() and not seq.duplicated(["user_id", "event_timestamp"]).any()
    assert sequence_as_of(seq, 1, ms(200)) == [] == sequence_as_of(seq, 1, ms(900))  # same second as 10, 11
    assert sequence_as_of(seq, 1, ms(1500)) == [10, 11]
    # the closing rows (the serving state) come after the last event: never joined to a training row
    assert sequence_as_of(seq, 1, ms(1999)) == [10, 11] and sequence_as_of(seq, 1, ms(2000)) == [10, 11, 13]
    assert sequence_as_of(seq, 2, ms(999)) == [] and sequence_as_of(seq, 2, ms(1000)) == [20]
