"""Fast online lookups for ranking: item embeddings and profiles, user profile and sequence.

Over Redis the reader reads Feast's own layout directly (see redis_codec): an item's profile and
embedding live in one hash, so a candidate is one HMGET; all HMGETs of a call go out as one
packed write and come back through hiredis, and values are decoded with numpy. `lookup` takes
two round trips: (user + candidates), then the user's history items. Over any other online
store (the embedded SQLite default) the same API runs on stock `get_online_features`.

Unknown ids are never an error: their rows are zeros and their `found` flag is False.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from feast import FeatureStore

from ..spec import EMBEDDING_FIELD, ITEM_PROFILE_VIEW, SEQUENCE_VIEW, USER_PROFILE_VIEW, FeatureSpec, embedding_view_name
from . import redis_codec as codec
from .layout import FLOAT32_LIST, INT64_LIST, ViewLayout, versioning_enabled


@dataclass
class ItemBatch:
    """Features of n items, row i for item_ids[i]."""

    item_ids: np.ndarray                 # int64 [n]
    embeddings: np.ndarray | None        # float32 [n, d]; zero rows where not found
    embedding_found: np.ndarray          # bool [n]
    profiles: dict[str, np.ndarray]      # name -> [n] (int64 codes, float32 dense); 0 where not found
    profile_found: np.ndarray            # bool [n]


@dataclass
class UserRow:
    """One user's online features (user profile and behaviour-sequence views)."""

    profile: dict[str, int | float]      # user profile field -> value (int64 code / float32); 0 if not stored
    hist_item_ids: np.ndarray            # int64 [L], oldest first; empty without a stored sequence
    hist_len: int
    found: bool                          # any of the user's features is stored
    sequence_found: bool                 # the behaviour sequence is stored


@dataclass
class OnlineLookup:
    """Everything a ranking request reads: the user, the candidates, the user's history items."""

    user: UserRow
    candidates: ItemBatch
    history: ItemBatch
    round_trips: int = field(default=0)


def is_redis(store: FeatureStore) -> bool:
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    return isinstance(store.config.online_store, RedisOnlineStoreConfig)


class OnlineReader:
    """Online reads for one feature store and spec.

    Views are resolved from the registry once, here; call `refresh()` after `feast apply`.
    """

    def __init__(self, store: FeatureStore, spec: FeatureSpec | None = None):
        self.store = store
        self.spec = spec or FeatureSpec.load(Path(store.repo_path) / "spec.json")
        self.project = store.config.project
        self._redis = None
        if is_redis(store):
            from .redis_connection import RedisTransport

            self._redis = RedisTransport(store.config.online_store)
        self.refresh()

    @property
    def backend(self) -> str:
        return "redis" if self._redis is not None else "feast"

    def refresh(self) -> None:
        versioning = versioning_enabled(self.store.config)
        self._views: dict[str, ViewLayout] = {}
        for fv in self.store.list_feature_views():
            try:
                self._views[fv.name] = ViewLayout.of(fv, versioning)
            except ValueError:
                continue  # a view the fast path cannot decode; it is not one the reader serves
        self._item_keys = codec.entity_key_prefix("item_id")

    def _view(self, name: str) -> ViewLayout:
        try:
            return self._views[name]
        except KeyError:
            raise KeyError(f"feature view {name!r} is not registered in project {self.project!r}; "
                           f"registered: {sorted(self._views)}") from None

    def _embedding_view(self, version: int | None) -> ViewLayout:
        if version is None:
            if self.spec.embedding is None:
                raise ValueError("the spec has no embedding; pass version=")
            version = self.spec.embedding.version
        return self._view(embedding_view_name(version))

    # --- public API -------------------------------------------------------------------------
    def item_embeddings(self, item_ids, version: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(float32 [n, d], found bool [n]) for the embedding view of `version` (default: the spec's)."""
        batch = self.items(item_ids, version, profiles=False)
        return batch.embeddings, batch.embedding_found

    def item_profiles(self, item_ids) -> tuple[dict[str, np.ndarray], np.ndarray]:
        batch = self.items(item_ids, version=None, profiles=True, embeddings=False)
        return batch.profiles, batch.profile_found

    def user_features(self, user_id: int) -> UserRow:
        """Profile fields, hist_item_ids (int64, oldest first), hist_len and found for one user."""
        if self._redis is None:
            return self._feast_user(int(user_id))
        views = [self._view(USER_PROFILE_VIEW), self._view(SEQUENCE_VIEW)]
        fields = [f for v in views for f in v.fields]
        (reply,) = self._redis.hmget_many([(codec.redis_keys("user_id", [user_id], self.project), fields)])
        return self._decode_user(views, reply)

    def items(self, item_ids, version: int | None = None, profiles: bool = True,
              embeddings: bool = True) -> ItemBatch:
        ids = np.asarray(item_ids, dtype=np.int64).reshape(-1)
        views = self._item_views(version, profiles, embeddings)
        if self._redis is None:
            return self._feast_items(ids, views)
        fields = [f for v in views for f in v.fields]
        replies = self._redis.hmget_many([(codec.redis_keys("item_id", ids, self.project), fields)])
        return self._decode_items(ids, views, replies)

    def lookup(self, user_id: int, candidate_ids, version: int | None = None, profiles: bool = True,
               history: bool = True) -> OnlineLookup:
        """User profile + sequence, and profiles + embeddings of the candidates and history items.

        Over Redis: one round trip. The candidates' HMGETs and a Lua script that reads the user
        and then the history items inside Redis (history_script.py) go out in one packed write.
        On Redis Cluster, or for ids the script cannot represent, the history items take a
        second round trip. `history=False` reads user + candidates only; `profiles=False` reads
        embeddings only.
        """
        cand = np.asarray(candidate_ids, dtype=np.int64).reshape(-1)
        item_views = self._item_views(version, profiles, True)
        if self._redis is None:
            user = self._feast_user(int(user_id))
            hist = user.hist_item_ids if history else np.zeros(0, np.int64)
            both = self._feast_items(np.concatenate([cand, hist]), item_views)
            return OnlineLookup(user, _slice(both, 0, len(cand)), _slice(both, len(cand), len(cand) + len(hist)), 0)

        user_views = [self._view(USER_PROFILE_VIEW), self._view(SEQUENCE_VIEW)]
        user_fields = [f for v in user_views for f in v.fields]
        item_fields = [f for v in item_views for f in v.fields]
        user_key = codec.redis_keys("user_id", [user_id], self.project)
        cand_keys = codec.redis_keys("item_id", cand, self.project)
        if history and not self._redis.is_cluster:
            return self._lookup_one_trip(user_key[0], cand, cand_keys, user_views, user_fields, item_views, item_fields)
        # Round trip 1: the user and every candidate in one packed pipeline.
        replies = self._redis.hmget_many([(user_key, user_fields), (cand_keys, item_fields)])
        user = self._decode_user(user_views, replies[0])
        candidates = self._decode_items(cand, item_views, replies[1:])
        hist = user.hist_item_ids if history else np.zeros(0, np.int64)
        history_batch, trips = self._history_trip(hist, item_views, item_fields)
        return OnlineLookup(user, candidates, history_batch, 1 + trips)

    def _lookup_one_trip(self, user_key, cand, cand_keys, user_views, user_fields, item_views, item_fields):
        """Candidates' HMGETs + the history script (history_script.py) in one packed write."""
        from .history_script import eval_args
        from .redis_connection import pack_command, pack_hmgets

        seq_index = user_fields.index(self._view(SEQUENCE_VIEW).feature("hist_item_ids").field)
        script = eval_args(user_key, user_fields, seq_index, self._item_keys, self.project, item_fields)
        payload = (pack_hmgets(cand_keys, item_fields) if len(cand) else b"") + pack_command(script)
        replies = self._redis.execute_packed(payload, len(cand) + 1)
        user_reply, hist_replies = replies[-1]
        user = self._decode_user(user_views, user_reply)
        candidates = self._decode_items(cand, item_views, replies[:-1])
        hist = user.hist_item_ids
        if hist_replies == b"fallback":  # ids the script cannot represent exactly: ask again
            history, trips = self._history_trip(hist, item_views, item_fields)
            return OnlineLookup(user, candidates, history, 1 + trips)
        return OnlineLookup(user, candidates, self._decode_items(hist, item_views, hist_replies), 1)

    def _history_trip(self, hist: np.ndarray, item_views, item_fields) -> tuple[ItemBatch, int]:
        """History items in their own round trip (repeats read once); (batch, round trips)."""
        if not len(hist):
            return self._decode_items(hist, item_views, []), 0
        uniq, inverse = np.unique(hist, return_inverse=True)
        replies = self._redis.hmget_many([(codec.redis_keys("item_id", uniq, self.project), item_fields)])
        return _take(self._decode_items(uniq, item_views, replies), inverse, hist), 1

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    # --- Redis decoding ---------------------------------------------------------------------
    def _item_views(self, version, profiles: bool, embeddings: bool) -> list[ViewLayout]:
        views = []
        if profiles:
            views.append(self._view(ITEM_PROFILE_VIEW))
        if embeddings:
            views.append(self._embedding_view(version))
        return views

    def _decode_items(self, ids: np.ndarray, views: list[ViewLayout], replies: list) -> ItemBatch:
        n = len(ids)
        emb, emb_found = None, np.zeros(n, dtype=bool)
        profiles: dict[str, np.ndarray] = {}
        prof_found = np.zeros(n, dtype=bool)
        col = 0
        for view in views:
            for feat in view.features:
                values = [r[col] for r in replies]
                col += 1
                decoded, found = feat.decode(values)
                if feat.kind == FLOAT32_LIST and feat.name == EMBEDDING_FIELD:
                    emb, emb_found = decoded, found
                else:
                    profiles[feat.name] = decoded
                    prof_found |= found
        return ItemBatch(ids, emb, emb_found, profiles, prof_found)

    def _decode_user(self, views: list[ViewLayout], reply: list) -> UserRow:
        out: dict = {}
        found = False
        seq_found = False
        col = 0
        for view in views:
            for feat in view.features:
                decoded, ok = feat.decode([reply[col]])
                col += 1
                out[feat.name] = decoded[0]
                found |= bool(ok[0])
                if view.view == SEQUENCE_VIEW:
                    seq_found |= bool(ok[0])
        return _finish_user(out, found, seq_found)

    # --- stock Feast (SQLite and any other online store) ------------------------------------
    def _feast_items(self, ids: np.ndarray, views: list[ViewLayout]) -> ItemBatch:
        n = len(ids)
        if n == 0:
            return _empty_items(views)
        refs = [f"{v.view}:{f.name}" for v in views for f in v.features]
        rows = self.store.get_online_features(features=refs, entity_rows=[{"item_id": int(i)} for i in ids]).to_dict()
        emb, emb_found = None, np.zeros(n, dtype=bool)
        profiles, prof_found = {}, np.zeros(n, dtype=bool)
        for v in views:
            for f in v.features:
                values = rows[f.name]
                found = np.array([x is not None for x in values], dtype=bool)
                if f.kind == FLOAT32_LIST:
                    matrix = np.zeros((n, f.dim), dtype=np.float32)
                    for i in np.flatnonzero(found):
                        matrix[i] = values[i]
                    emb, emb_found = matrix, found
                else:
                    profiles[f.name] = _column(values, f.kind)
                    prof_found |= found
        return ItemBatch(ids, emb, emb_found, profiles, prof_found)

    def _feast_user(self, user_id: int) -> UserRow:
        views = [self._view(USER_PROFILE_VIEW), self._view(SEQUENCE_VIEW)]
        refs = [f"{v.view}:{f.name}" for v in views for f in v.features]
        row = self.store.get_online_features(features=refs, entity_rows=[{"user_id": user_id}]).to_dict()
        out, found, seq_found = {}, False, False
        for v in views:
            for f in v.features:
                value = row[f.name][0]
                found |= value is not None
                if v.view == SEQUENCE_VIEW:
                    seq_found |= value is not None
                out[f.name] = _column([value], f.kind)[0]
        return _finish_user(out, found, seq_found)


def _column(values: list, kind: str) -> np.ndarray:
    if kind == INT64_LIST:
        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            out[i] = np.asarray(v if v is not None else [], dtype=np.int64)
        return out
    dtype = np.int64 if kind == "int64" else np.float32
    return np.array([0 if v is None else v for v in values], dtype=dtype)


def _finish_user(out: dict, found: bool, seq_found: bool) -> UserRow:
    hist = out.pop("hist_item_ids", None)
    hist = np.asarray(hist if hist is not None else [], dtype=np.int64)
    hist_len = int(out.pop("hist_len", len(hist)))
    return UserRow(out, hist, hist_len, found, seq_found)


def _empty_items(views: list[ViewLayout]) -> ItemBatch:
    emb = None
    profiles = {}
    for v in views:
        for f in v.features:
            if f.kind == FLOAT32_LIST:
                emb = np.zeros((0, f.dim), dtype=np.float32)
            else:
                profiles[f.name] = _column([], f.kind)
    return ItemBatch(np.zeros(0, np.int64), emb, np.zeros(0, bool), profiles, np.zeros(0, bool))


def _slice(b: ItemBatch, start: int, stop: int) -> ItemBatch:
    return ItemBatch(b.item_ids[start:stop], None if b.embeddings is None else b.embeddings[start:stop],
                     b.embedding_found[start:stop], {k: v[start:stop] for k, v in b.profiles.items()},
                     b.profile_found[start:stop])


def _take(b: ItemBatch, idx: np.ndarray, ids: np.ndarray) -> ItemBatch:
    return ItemBatch(ids, None if b.embeddings is None else b.embeddings[idx], b.embedding_found[idx],
                     {k: v[idx] for k, v in b.profiles.items()}, b.profile_found[idx])
