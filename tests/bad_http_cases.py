"""Bad HTTP requests for the scoring service (issue #16's bad-input suite): (id, method, path, body).

A body is raw bytes (so NaN, Infinity, broken JSON and non-UTF-8 can be sent) or None. Every case
must be answered without a 500, without a traceback, and without echoing its input.
"""
from __future__ import annotations

import json

PAD = "P4D-" * 175_000  # 700 kB of input that must never come back (under the 1 MiB limit)


def _j(obj) -> bytes:
    return json.dumps(obj).encode()


def _score(**fields) -> bytes:
    return _j({"user_id": 1, "candidate_item_ids": [1, 2], **fields})


def _event(**fields) -> bytes:
    return _j({"user_id": 5, "item_id": 3, "event_type": "click", **fields})


SCORE_RAW = {
    "nan_user": b'{"user_id": NaN, "candidate_item_ids": [1]}',
    "inf_candidate": b'{"user_id": 1, "candidate_item_ids": [Infinity]}',
    "neg_inf_candidate": b'{"user_id": 1, "candidate_item_ids": [-Infinity]}',
    "nan_context": b'{"user_id": 1, "candidate_item_ids": [1], "context": {"hour": NaN}}',
    "nan_extra": b'{"user_id": 1, "candidate_item_ids": [1], "x": NaN}',
    "nan_nested_extra": b'{"user_id": 1, "candidate_item_ids": [1], "x": {"y": [1, NaN]}}',
    "overflow_float": b'{"user_id": 1, "candidate_item_ids": [1e400]}',
    "overflow_float_extra": b'{"user_id": 1, "candidate_item_ids": [1], "x": -1e999}',
    "digits_5000": b'{"user_id": ' + b"9" * 5000 + b', "candidate_item_ids": [1]}',
    "deep_nesting": b'{"user_id": 1, "candidate_item_ids": [1], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "empty": b"",
    "null": b"null",
    "array": b"[1, 2]",
    "string": b'"hello"',
    "number": b"123",
    "open_brace": b"{",
    "trailing_garbage": b'{"user_id": 1, "candidate_item_ids": [1]} x',
    "not_utf8": b'{"user_id": 1, "candidate_item_ids": [1], "x": "\xff\xfe"}',
    "utf16": '{"user_id": 1, "candidate_item_ids": [1]}'.encode("utf-16"),
    "single_quotes": b"{'user_id': 1, 'candidate_item_ids': [1]}",
    "duplicate_keys": b'{"user_id": 1, "user_id": "x", "candidate_item_ids": [1]}',
    "lone_surrogate": b'{"user_id": 1, "candidate_item_ids": [1], "x": "\\ud800"}',
}
SCORE_FIELDS = {
    "user_string": {"user_id": "7"}, "user_float": {"user_id": 1.5}, "user_float_whole": {"user_id": 1.0},
    "user_bool": {"user_id": True}, "user_null": {"user_id": None}, "user_list": {"user_id": [1]},
    "user_object": {"user_id": {"id": 1}}, "user_2p63": {"user_id": 2**63}, "user_below_int64": {"user_id": -2**63 - 1},
    "cands_empty": {"candidate_item_ids": []}, "cands_null": {"candidate_item_ids": None},
    "cands_string": {"candidate_item_ids": "1,2"}, "cands_object": {"candidate_item_ids": {"a": 1}},
    "cands_with_null": {"candidate_item_ids": [1, None]}, "cands_float": {"candidate_item_ids": [1, 2.5]},
    "cands_bool": {"candidate_item_ids": [True]}, "cands_nested": {"candidate_item_ids": [[1]]},
    "cands_2p64": {"candidate_item_ids": [2**64]}, "cands_too_many": {"candidate_item_ids": list(range(1, 52))},
    "cands_10000": {"candidate_item_ids": list(range(1, 10_001))},
    "context_unknown": {"context": {"hour": 3}}, "context_string": {"context": {"hour": "3"}},
    "context_float": {"context": {"hour": 2.5}}, "context_list": {"context": [1, 2]},
    "context_nested": {"context": {"hour": {"x": 1}}}, "extra_field": {"debug": True},
    "extra_pad": {"x": PAD}, PAD[:40]: {PAD: 1},
}
EVENT_RAW = {
    "nan_user": b'{"user_id": NaN, "item_id": 3, "event_type": "click"}',
    "nan_item": b'{"user_id": 5, "item_id": NaN, "event_type": "click"}',
    "inf_item": b'{"user_id": 5, "item_id": Infinity, "event_type": "click"}',
    "nan_timestamp": b'{"user_id": 5, "item_id": 3, "event_type": "click", "event_timestamp": NaN}',
    "empty": b"",
    "array": b"[]",
    "broken": b'{"user_id": 5, "item_id": ',
    "not_utf8": b'{"user_id": 5, "item_id": 3, "event_type": "\xc3\x28"}',
}
EVENT_FIELDS = {
    "ts_number": {"event_timestamp": 1767225600}, "ts_words": {"event_timestamp": "yesterday"},
    "ts_month_13": {"event_timestamp": "2026-13-45T00:00:00Z"}, "ts_naive": {"event_timestamp": "2026-03-01T12:00:00"},
    "ts_9999": {"event_timestamp": "9999-12-31T23:59:59Z"}, "ts_2099": {"event_timestamp": "2099-01-01T00:00:00Z"},
    "ts_1900": {"event_timestamp": "1900-01-01T00:00:00Z"}, "ts_year_1": {"event_timestamp": "0001-01-01T00:00:00Z"},
    "ts_year_99999": {"event_timestamp": "99999-01-01T00:00:00Z"}, "ts_list": {"event_timestamp": ["2026"]},
    "ts_pad": {"event_timestamp": PAD}, "type_view": {"event_type": "view"}, "type_null": {"event_type": None},
    "type_int": {"event_type": 1}, "item_0": {"item_id": 0}, "item_negative": {"item_id": -1},
    "item_unknown": {"item_id": 10**9}, "item_2p63": {"item_id": 2**63}, "item_string": {"item_id": "3"},
    "item_float": {"item_id": 3.0}, "user_0": {"user_id": 0}, "user_negative": {"user_id": -7},
    "user_string": {"user_id": "5"}, "extra_field": {"source": "app"}, "extra_pad": {"x": PAD},
}
OTHER = [
    ("get_score", "GET", "/score", None), ("put_score", "PUT", "/score", _score()),
    ("get_events", "GET", "/events", None), ("delete_events", "DELETE", "/events", None),
    ("post_health", "POST", "/health", b"{}"), ("unknown_path", "GET", "/nope", None),
    ("traversal", "GET", "/../../etc/passwd", None), ("score_2mib", "POST", "/score", _score(x="y" * (2 << 20))),
    ("events_2mib", "POST", "/events", _event(x="y" * (2 << 20))), ("post_metrics", "POST", "/metrics", b"NaN"),
]

CASES = ([(f"score_{k}", "POST", "/score", v) for k, v in SCORE_RAW.items()]
         + [(f"score_{k[:40]}", "POST", "/score", _score(**v)) for k, v in SCORE_FIELDS.items()]
         + [(f"events_{k}", "POST", "/events", v) for k, v in EVENT_RAW.items()]
         + [(f"events_{k}", "POST", "/events", _event(**v)) for k, v in EVENT_FIELDS.items()]
         + OTHER)
