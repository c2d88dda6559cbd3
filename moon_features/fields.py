"""The typed fields of a feature spec, as in FuxiCTR's feature map: one object per model input.

`FeatureSpec.fields()` lists them; the model's inputs (`FeatureSpec.model_inputs`) and the
feature references read from Feast (`FeatureSpec.feature_refs`) are derived from that one list.
Each field says what it is (its class and `kind`), whose it is (`group`: user, item or context,
as in ctr_models.inputs.SparseField) and where it is read from (`source`: a Feast view, or
ENTITY_ROWS for the columns of the entity rows themselves: the ids, and the context features
that ride along on each training row and arrive in each /score request).

Only ContextFeature is persisted by itself (spec.json's "context"); the others are views of the
spec's older flat fields, so spec files written before this module load unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import MoonFeaturesError

ENTITY_ROWS = "entity_rows"  # the source of fields that are columns of the entity rows, not of a view
EMBEDDING_FIELD = "embedding"  # the feature of every embedding view (item_moon_embedding_v<N>:embedding)


class ContextColumnError(MoonFeaturesError, ValueError):
    """A context column cannot be a categorical feature (absent, a reserved name, or fractional values)."""


@dataclass(frozen=True)
class IdFeature:
    """An entity key (user_id, item_id) looked up in its own embedding table; 0 = unknown."""

    name: str
    vocab_size: int
    group: str
    source: str = ENTITY_ROWS
    kind: str = "id"
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class CategoricalField:
    """A profile attribute stored in a Feast view as vocabulary codes (vocabulary[i] -> i + 1)."""

    name: str
    vocab_size: int
    group: str
    source: str
    kind: str = "categorical"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True)
class DenseFeature:
    """A float profile value, standardised with the statistics recorded at `features build`."""

    name: str
    group: str
    source: str
    mean: float = 0.0
    std: float = 1.0
    kind: str = "dense"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True)
class SequenceFeature:
    """A behaviour sequence sharing the embedding table of the sparse field `target`.

    `columns` are the view's columns it is built from (empty for a history attribute, whose
    codes come from the history ids and the item profile)."""

    name: str
    target: str
    source: str
    columns: tuple[str, ...] = ()
    group: str = "user"
    kind: str = "sequence"


@dataclass(frozen=True)
class EmbeddingFeature:
    """The frozen vector of an item (target and history) in one embedding view (an encoder version).

    A spec may name several views: the models read their vectors concatenated in the spec's
    order (one content vector per item), so the field is named `embedding` for a single view and
    `embedding_v<N>` for each of several; the view's column is `embedding` either way."""

    name: str
    version: int
    dim: int
    source: str
    group: str = "item"
    kind: str = "embedding"

    @property
    def columns(self) -> tuple[str, ...]:
        return (EMBEDDING_FIELD,)


@dataclass(frozen=True)
class ContextFeature:
    """A categorical of the request / interaction itself (hour of day, device, page, ...).

    Trained from a column of the entity rows (the interaction log's column of that name) and
    given at serving time in the /score request's `context`: no Feast view holds it. Values are
    compared as text, so the request may send 13 or "13" for an integer column; a value outside
    the vocabulary, and a null, map to 0 (unknown), as for any categorical.
    """

    name: str
    vocabulary: tuple[str, ...]
    group: str = "context"
    source: str = ENTITY_ROWS
    kind: str = "context"
    columns: tuple[str, ...] = ()

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary) + 1

    def encode(self, values) -> np.ndarray:
        """int64 codes of raw values (a column, a list): vocabulary[i] -> i + 1, anything else 0."""
        text = context_text(pd.Series(values), self.name)
        codes = pd.Categorical(text, categories=list(self.vocabulary)).codes
        return codes.astype(np.int64) + 1  # unseen values and nulls get code -1 -> 0

    def to_dict(self) -> dict:
        return {"name": self.name, "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_column(cls, name: str, column: pd.Series) -> "ContextFeature":
        """The feature with the sorted distinct values of a column as its vocabulary."""
        return cls(name, tuple(sorted(context_text(column, name).dropna().unique())))


def context_text(values: pd.Series, name: str) -> pd.Series:
    """Raw context values as text, nulls kept as None; one rule offline and online.

    Integer columns read back as float when they hold nulls (pandas, Arrow): 13.0 is written
    13, so the vocabulary and a request's 13 agree. A fractional value is no category."""
    if pd.api.types.is_float_dtype(values.dtype):
        known = values.dropna()
        fractional = known[known != np.floor(known)]
        if len(fractional):
            raise ContextColumnError(f"context column {name!r} holds fractional numbers ({fractional.iloc[0]!r}, "
                                     "...): a context feature is categorical; bucket it first (e.g. hour of day)")
        values = values.astype("Int64")
    text = values.astype("string")
    return text.astype(object).where(text.notna(), None)
