"""The generic online reader: stock Feast `get_online_features`, for any online store.

The embedded SQLite default uses it; so would any online store Feast supports. Same answers as
the Redis reader (tests/test_store_reader.py compares them), at stock Feast's speed.
"""
from __future__ import annotations

import numpy as np

from ..spec import SEQUENCE_VIEW
from .layout import FLOAT32_LIST, INT64, INT64_LIST, ViewLayout
from .reader_base import ItemBatch, OnlineLookup, OnlineReaderBase, UserRow, joined_embeddings
from .store_lock import thread_lock


class FeastReader(OnlineReaderBase):
    """Online reads through `FeatureStore.get_online_features`."""

    backend = "feast"

    def _online(self, refs: list[str], entity_rows: list[dict], full_names: bool = False) -> dict:
        # under the store's lock: SQLite's one shared connection must not read while a push commits
        with thread_lock(self.store):
            return self.store.get_online_features(features=refs, entity_rows=entity_rows,
                                                  full_feature_names=full_names).to_dict()

    def _read_items(self, ids: np.ndarray, views: list[ViewLayout]) -> ItemBatch:
        n = len(ids)
        refs = [f"{v.view}:{f.name}" for v in views for f in v.features]
        # full names (view__feature): every embedding view's feature is called `embedding`
        rows = self._online(refs, [{"item_id": int(i)} for i in ids], full_names=True) if n and refs else {}
        parts, founds = [], []  # one per embedding view, in read order
        profiles, prof_found = {}, np.zeros(n, dtype=bool)
        for v, f in ((v, f) for v in views for f in v.features):
            values = rows.get(f"{v.view}__{f.name}", [None] * n)
            found = np.array([x is not None for x in values], dtype=bool)
            if f.kind == FLOAT32_LIST:
                emb = np.zeros((n, f.dim), dtype=np.float32)
                for i in np.flatnonzero(found):
                    emb[i] = values[i]
                parts.append(emb)
                founds.append(found)
            else:
                profiles[f.name] = _column(values, f.kind)
                prof_found |= found
        return ItemBatch(ids, *joined_embeddings(parts, founds, n), profiles, prof_found)

    def user_features(self, user_id: int) -> UserRow:
        views = self._user_views()
        refs = [f"{v.view}:{f.name}" for v in views for f in v.features]
        row = self._online(refs, [{"user_id": int(user_id)}])
        values, found, seq_found = {}, False, False
        for v in views:
            for f in v.features:
                value = row[f.name][0]
                found |= value is not None
                if v.view == SEQUENCE_VIEW:
                    seq_found |= value is not None
                values[f.name] = _column([value], f.kind)[0]
        return UserRow.of(values, found, seq_found, self.spec.sequences)

    def lookup(self, user_id: int, candidate_ids, version=None, profiles: bool = True,
               history: bool = True) -> OnlineLookup:
        """Two calls: the user, then candidates and history items together."""
        cand = np.asarray(candidate_ids, dtype=np.int64).reshape(-1)
        user = self.user_features(int(user_id))
        hist = user.hist_item_ids if history else np.zeros(0, np.int64)
        both = self._read_items(np.concatenate([cand, hist]), self._item_views(version, profiles, True))
        return OnlineLookup(user, both.slice(0, len(cand)), both.slice(len(cand), len(cand) + len(hist)), 0)


def _column(values: list, kind: str) -> np.ndarray:
    """Feast's Python values as numpy: int64 lists as an object array of arrays, None as 0 / empty."""
    if kind == INT64_LIST:
        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            out[i] = np.asarray(v if v is not None else [], dtype=np.int64)
        return out
    dtype = np.int64 if kind == INT64 else np.float32
    return np.array([0 if v is None else v for v in values], dtype=dtype)
