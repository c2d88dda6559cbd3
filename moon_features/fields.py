"""The typed fields of a feature spec, as in FuxiCTR's feature map: one object per model input.

`FeatureSpec.fields()` lists them; the model's inputs (`FeatureSpec.model_inputs`) and the
feature references read from Feast (`FeatureSpec.feature_refs`) are derived from that one list.
Each field says what it is (its class and `kind`), whose it is (`group`: user, item or context,
as in ctr_models.inputs.SparseField) and where it is read from (`source`: a Feast view, or
ENTITY_ROWS for the columns of the entity rows themselves: the ids, and the context features
that ride along on each training row and arrive in each /score request).

Only ContextFeature and SequenceSpec are persisted by themselves (spec.json's "context" and
"sequences", each written only when there are some); the others are views of the spec's older
flat fields, so spec files written before this module load unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import re

import numpy as np
import pandas as pd

from .errors import MoonFeaturesError

ENTITY_ROWS = "entity_rows"  # the source of fields that are columns of the entity rows, not of a view
EMBEDDING_FIELD = "embedding"  # the feature of every embedding view (item_moon_embedding_v<N>:embedding)
EVENT_TYPE_COLUMN = "event_type"  # the interaction log's column that sequences besides the main one filter on
SEQUENCE_NAME = re.compile(r"[a-z][a-z0-9]{0,31}")


class ContextColumnError(MoonFeaturesError, ValueError):
    """A context column cannot be a categorical feature (absent, a reserved name, or fractional values)."""


class SequenceSpecError(MoonFeaturesError, ValueError):
    """A behaviour sequence cannot be built as named (a bad name, no event_type column, an unknown type)."""


@dataclass(frozen=True)
class SequenceSpec:
    """A behaviour sequence besides the main one (which holds every positive event): the user's
    last max_len positive events whose event_type (the log's EVENT_TYPE_COLUMN) is one of
    `event_types`, e.g. SequenceSpec("purchase", ("purchase",)). Item ids only: its items are
    looked up in the item-id table, with no attribute and no MOON vector of their own. It has a
    view of its own, user_behavior_sequence_<name> (columns hist_<name>_item_ids, hist_<name>_len)."""

    name: str
    event_types: tuple[str, ...]

    def __post_init__(self):
        if not isinstance(self.name, str) or not SEQUENCE_NAME.fullmatch(self.name):
            raise SequenceSpecError(f"sequence name {self.name!r}: use 1-32 lowercase letters and digits, "
                                    "starting with a letter (it names the view user_behavior_sequence_<name>)")
        object.__setattr__(self, "event_types", tuple(str(t) for t in self.event_types))
        if not self.event_types:
            raise SequenceSpecError(f"sequence {self.name!r} names no event type; e.g. --sequence purchase=purchase")

    @property
    def view_name(self) -> str:
        return f"user_behavior_sequence_{self.name}"

    @property
    def push_source(self) -> str:
        return f"user_behavior_push_{self.name}"

    @property
    def ids_column(self) -> str:
        return f"hist_{self.name}_item_ids"

    @property
    def len_column(self) -> str:
        return f"hist_{self.name}_len"

    @property
    def field_name(self) -> str:
        return f"hist_{self.name}_item_id"

    def to_dict(self) -> dict:
        return {"name": self.name, "event_types": list(self.event_types)}

    @classmethod
    def parse(cls, text: str) -> "SequenceSpec":
        """NAME=TYPE[,TYPE...], as `features build --sequence` takes it."""
        name, sep, types = text.partition("=")
        if not sep:
            raise SequenceSpecError(f"--sequence {text!r}: write NAME=TYPE[,TYPE...], e.g. purchase=purchase")
        return cls(name.strip(), tuple(t.strip() for t in types.split(",") if t.strip()))


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
    sequence: str = ""  # the behaviour sequence it belongs to (SequenceSpec.name); "" = the main one


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
