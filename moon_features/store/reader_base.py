"""What an online read returns, and the interface both online readers implement.

Two readers (store/online_reader.py picks one by the store's online store type):

* `RedisReader` (redis_reader.py): the fast path, Feast's Redis layout read directly in one
  pipelined fan-out;
* `FeastReader` (feast_reader.py): stock `get_online_features`, for any online store.

Both resolve the registered views once (`refresh()`), answer with the same numpy types, and
treat unknown ids as zeros with a False `found` flag, never as an error. A spec without an
embedding (an ids-only repo) reads no embedding view: `embeddings` is None. A spec with several
embedding views reads them all, and `embeddings` holds their vectors concatenated in the spec's
order (what training's moon_table gathers), zeros where one view lacks the item.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from feast import FeatureStore

from ..spec import ITEM_PROFILE_VIEW, SEQUENCE_VIEW, USER_PROFILE_VIEW, FeatureSpec, embedding_view_name
from .layout import ViewLayout, versioning_enabled
from .repo import load_spec


@dataclass
class ItemBatch:
    """Features of n items, row i for item_ids[i]."""

    item_ids: np.ndarray                 # int64 [n]
    embeddings: np.ndarray | None        # float32 [n, D]: the views read, concatenated; zeros where not found;
                                         # None: no embedding view read
    embedding_found: np.ndarray          # bool [n]: found in every embedding view read
    profiles: dict[str, np.ndarray]      # name -> [n] (int64 codes, float32 dense); 0 where not found
    profile_found: np.ndarray            # bool [n]

    def slice(self, start: int, stop: int) -> "ItemBatch":
        return ItemBatch(self.item_ids[start:stop], None if self.embeddings is None else self.embeddings[start:stop],
                         self.embedding_found[start:stop], {k: v[start:stop] for k, v in self.profiles.items()},
                         self.profile_found[start:stop])

    def take(self, idx: np.ndarray, ids: np.ndarray) -> "ItemBatch":
        """Rows `idx` of this batch, labelled with `ids` (e.g. a history expanded from its unique ids)."""
        return ItemBatch(ids, None if self.embeddings is None else self.embeddings[idx], self.embedding_found[idx],
                         {k: v[idx] for k, v in self.profiles.items()}, self.profile_found[idx])


def joined_embeddings(parts: list[np.ndarray], founds: list[np.ndarray], n: int) -> tuple[np.ndarray | None, np.ndarray]:
    """ItemBatch's (embeddings, embedding_found) from the embedding views read, in read order."""
    if not parts:
        return None, np.zeros(n, dtype=bool)
    emb = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return emb, np.logical_and.reduce(founds)


@dataclass
class UserRow:
    """One user's online features (user profile and behaviour-sequence views)."""

    profile: dict[str, int | float]      # user profile field -> value (int64 code / float32); 0 if not stored
    hist_item_ids: np.ndarray            # int64 [L], oldest first; empty without a stored sequence
    hist_len: int
    found: bool                          # any of the user's features is stored
    sequence_found: bool                 # the behaviour sequence is stored
    # sequence name -> int64 [L] item ids, oldest first, of each behaviour sequence besides the main
    # one (spec.sequences; empty where not stored)
    histories: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, values: dict, found: bool, seq_found: bool, sequences=()) -> "UserRow":
        """From feature name -> value of the user profile and sequence views (the main one and
        `sequences`, the spec's SequenceSpecs besides it)."""
        values = dict(values)
        hist = values.pop("hist_item_ids", None)
        hist = np.asarray(hist if hist is not None else [], dtype=np.int64)
        hist_len = int(values.pop("hist_len", len(hist)))
        histories = {}
        for seq in sequences:
            ids = values.pop(seq.ids_column, None)
            values.pop(seq.len_column, None)
            histories[seq.name] = np.asarray(ids if ids is not None else [], dtype=np.int64)
        return cls(values, hist, hist_len, found, seq_found, histories)


@dataclass
class OnlineLookup:
    """Everything a ranking request reads: the user, the candidates, the user's history items."""

    user: UserRow
    candidates: ItemBatch
    history: ItemBatch
    round_trips: int = field(default=0)


class OnlineReaderBase(ABC):
    """Online reads for one feature store and spec; the interface serving and consistency use.

    Views are resolved from the registry once, here; call `refresh()` after `feast apply`.
    """

    backend: str = ""

    def __init__(self, store: FeatureStore, spec: FeatureSpec | None = None):
        self.store = store
        self.spec = spec or load_spec(Path(store.repo_path))
        self.project = store.config.project
        self.refresh()

    def refresh(self) -> None:
        versioning = versioning_enabled(self.store.config)
        self._views: dict[str, ViewLayout] = {}
        for fv in self.store.list_feature_views():
            try:
                self._views[fv.name] = ViewLayout.of(fv, versioning)
            except ValueError:
                continue  # a view the reader cannot decode; it is not one the reader serves

    # --- the reads each backend implements ------------------------------------------------------
    @abstractmethod
    def _read_items(self, ids: np.ndarray, views: list[ViewLayout]) -> ItemBatch:
        """Features of `views` for item ids (int64 [n])."""

    @abstractmethod
    def user_features(self, user_id: int) -> UserRow:
        """Profile fields, hist_item_ids (int64, oldest first), hist_len and found for one user."""

    @abstractmethod
    def lookup(self, user_id: int, candidate_ids, version: int | Sequence[int] | None = None, profiles: bool = True,
               history: bool = True) -> OnlineLookup:
        """User profile + sequence, and profiles + embeddings of the candidates and history items.

        `history=False` reads user + candidates only; `profiles=False` reads embeddings only.
        The embedding views are `version`'s (one version or several), else the spec's; none for
        an ids-only spec."""

    def close(self) -> None:
        """Release connections (nothing to release by default)."""

    # --- shared API -----------------------------------------------------------------------------
    def items(self, item_ids, version: int | Sequence[int] | None = None, profiles: bool = True,
              embeddings: bool = True) -> ItemBatch:
        ids = np.asarray(item_ids, dtype=np.int64).reshape(-1)
        return self._read_items(ids, self._item_views(version, profiles, embeddings))

    def item_embeddings(self, item_ids, version: int | Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(float32 [n, D], found bool [n]) of the embedding views of `version` (default: the spec's),
        concatenated in order."""
        if version is None and not self.spec.embeddings:
            raise ValueError("the spec has no embedding; pass version=")
        batch = self.items(item_ids, version, profiles=False)
        return batch.embeddings, batch.embedding_found

    def item_profiles(self, item_ids) -> tuple[dict[str, np.ndarray], np.ndarray]:
        batch = self.items(item_ids, version=None, profiles=True, embeddings=False)
        return batch.profiles, batch.profile_found

    def _view(self, name: str) -> ViewLayout:
        try:
            return self._views[name]
        except KeyError:
            raise KeyError(f"feature view {name!r} is not registered in project {self.project!r}; "
                           f"registered: {sorted(self._views)}") from None

    def _user_views(self) -> list[ViewLayout]:
        """The user profile, the main behaviour sequence, then each sequence besides it."""
        return [self._view(USER_PROFILE_VIEW), self._view(SEQUENCE_VIEW),
                *(self._view(seq.view_name) for seq in self.spec.sequences)]

    def _item_views(self, version: int | Sequence[int] | None, profiles: bool, embeddings: bool) -> list[ViewLayout]:
        """The item views to read: the profile, then the embedding views of `version` (one version
        or several, in order), else the spec's; none when neither names one."""
        views = [self._view(ITEM_PROFILE_VIEW)] if profiles else []
        if not embeddings:
            return views
        if version is None:
            versions = self.spec.embedding_versions
        else:
            versions = (version,) if isinstance(version, (int, np.integer)) else tuple(version)
        return views + [self._view(embedding_view_name(v)) for v in versions]

