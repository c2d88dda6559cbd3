"""The fast online reader: Feast's Redis layout read directly (see redis_codec).

An item's profile and embedding live in one hash, so a candidate is one HMGET; all HMGETs of a
call go out as one packed write and come back through hiredis, and values are decoded with
numpy. A wrapper of the optional redis backend: store/online_reader.py imports it only for a
Redis online store.
"""
from __future__ import annotations

import numpy as np
from feast import FeatureStore

from ..spec import EMBEDDING_FIELD, SEQUENCE_VIEW, FeatureSpec
from . import redis_codec as codec
from .history_script import eval_args
from .layout import FLOAT32_LIST, ViewLayout
from .reader_base import ItemBatch, OnlineLookup, OnlineReaderBase, UserRow, joined_embeddings
from .redis_connection import RedisTransport, pack_command, pack_hmgets


class RedisReader(OnlineReaderBase):
    """Online reads over Redis (plain or Cluster) in one pipelined fan-out per call."""

    backend = "redis"

    def __init__(self, store: FeatureStore, spec: FeatureSpec | None = None):
        self._redis = RedisTransport(store.config.online_store)
        self._item_keys = codec.entity_key_prefix("item_id")
        super().__init__(store, spec)

    def close(self) -> None:
        self._redis.close()

    def user_features(self, user_id: int) -> UserRow:
        views = self._user_views()
        fields = [f for v in views for f in v.fields]
        (reply,) = self._redis.hmget_many([(codec.redis_keys("user_id", [user_id], self.project), fields)])
        return _decode_user(views, reply, self.spec.sequences)

    def _read_items(self, ids: np.ndarray, views: list[ViewLayout]) -> ItemBatch:
        fields = [f for v in views for f in v.fields]
        replies = self._redis.hmget_many([(codec.redis_keys("item_id", ids, self.project), fields)])
        return _decode_items(ids, views, replies)

    def lookup(self, user_id: int, candidate_ids, version=None, profiles: bool = True,
               history: bool = True) -> OnlineLookup:
        """One round trip: the candidates' HMGETs and a Lua script that reads the user and then
        the history items inside Redis (history_script.py) go out in one packed write. On Redis
        Cluster, or for ids the script cannot represent, the history items take a second trip."""
        cand = np.asarray(candidate_ids, dtype=np.int64).reshape(-1)
        item_views = self._item_views(version, profiles, True)
        user_views = self._user_views()
        user_fields = [f for v in user_views for f in v.fields]
        item_fields = [f for v in item_views for f in v.fields]
        user_key = codec.redis_keys("user_id", [user_id], self.project)
        cand_keys = codec.redis_keys("item_id", cand, self.project)
        if history and not self._redis.is_cluster:
            return self._lookup_one_trip(user_key[0], cand, cand_keys, user_views, user_fields, item_views, item_fields)
        # Round trip 1: the user and every candidate in one packed pipeline.
        replies = self._redis.hmget_many([(user_key, user_fields), (cand_keys, item_fields)])
        user = _decode_user(user_views, replies[0], self.spec.sequences)
        candidates = _decode_items(cand, item_views, replies[1:])
        hist = user.hist_item_ids if history else np.zeros(0, np.int64)
        history_batch, trips = self._history_trip(hist, item_views, item_fields)
        return OnlineLookup(user, candidates, history_batch, 1 + trips)

    def _lookup_one_trip(self, user_key, cand, cand_keys, user_views, user_fields, item_views, item_fields):
        """Candidates' HMGETs + the history script (history_script.py) in one packed write."""
        seq_index = user_fields.index(self._view(SEQUENCE_VIEW).feature("hist_item_ids").field)
        script = eval_args(user_key, user_fields, seq_index, self._item_keys, self.project, item_fields)
        payload = (pack_hmgets(cand_keys, item_fields) if len(cand) else b"") + pack_command(script)
        replies = self._redis.execute_packed(payload, len(cand) + 1)
        user_reply, hist_replies = replies[-1]
        user = _decode_user(user_views, user_reply, self.spec.sequences)
        candidates = _decode_items(cand, item_views, replies[:-1])
        hist = user.hist_item_ids
        if hist_replies == b"fallback":  # ids the script cannot represent exactly: ask again
            history, trips = self._history_trip(hist, item_views, item_fields)
            return OnlineLookup(user, candidates, history, 1 + trips)
        return OnlineLookup(user, candidates, _decode_items(hist, item_views, hist_replies), 1)

    def _history_trip(self, hist: np.ndarray, item_views, item_fields) -> tuple[ItemBatch, int]:
        """History items in their own round trip (repeats read once); (batch, round trips)."""
        if not len(hist):
            return _decode_items(hist, item_views, []), 0
        uniq, inverse = np.unique(hist, return_inverse=True)
        replies = self._redis.hmget_many([(codec.redis_keys("item_id", uniq, self.project), item_fields)])
        return _decode_items(uniq, item_views, replies).take(inverse, hist), 1


def _decode_items(ids: np.ndarray, views: list[ViewLayout], replies: list) -> ItemBatch:
    n = len(ids)
    parts, founds = [], []  # one per embedding view, in read order
    profiles: dict[str, np.ndarray] = {}
    prof_found = np.zeros(n, dtype=bool)
    col = 0
    for view in views:
        for feat in view.features:
            decoded, found = feat.decode([r[col] for r in replies])
            col += 1
            if feat.kind == FLOAT32_LIST and feat.name == EMBEDDING_FIELD:
                parts.append(decoded)
                founds.append(found)
            else:
                profiles[feat.name] = decoded
                prof_found |= found
    return ItemBatch(ids, *joined_embeddings(parts, founds, n), profiles, prof_found)


def _decode_user(views: list[ViewLayout], reply: list, sequences=()) -> UserRow:
    values: dict = {}
    found = seq_found = False
    col = 0
    for view in views:
        for feat in view.features:
            decoded, ok = feat.decode([reply[col]])
            col += 1
            values[feat.name] = decoded[0]
            found |= bool(ok[0])
            if view.view == SEQUENCE_VIEW:
                seq_found |= bool(ok[0])
    return UserRow.of(values, found, seq_found, sequences)
