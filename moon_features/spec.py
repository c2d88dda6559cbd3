"""The feature spec: the one source of truth for features.

From a FeatureSpec come the Feast schema (moon_features.store.definitions), the source tables
(moon_features.store.sources), the model's inputs (`model_inputs()`) and the batch layout.
A model artifact records the spec it was trained with; `check_compatible` refuses another.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import MoonFeaturesError
from .fields import (EMBEDDING_FIELD, ENTITY_ROWS, EVENT_TYPE_COLUMN, CategoricalField, ContextColumnError,
                     ContextFeature, DenseFeature, EmbeddingFeature, IdFeature, SequenceFeature, SequenceSpec,
                     SequenceSpecError)
from ctr_models.inputs import ModelInputs, SequenceField, SparseField

ITEM_PROFILE_VIEW = "item_profile"
USER_PROFILE_VIEW = "user_profile"
SEQUENCE_VIEW = "user_behavior_sequence"
SEQUENCE_PUSH_SOURCE = "user_behavior_push"
# any multiple of 16 up to 1024: the encoder serves a trained prefix plus its content part
# (e.g. 64 + 32 = 96), so the served sizes are not powers of two
SUPPORTED_EMBEDDING_DIMS = tuple(range(16, 1025, 16))
# columns of the entity rows that are no context feature (a context column may not take these names)
ENTITY_ROW_COLUMNS = ("user_id", "item_id", "event_timestamp", "label")
SPARSE_KINDS = ("id", "categorical", "context")


class SpecError(MoonFeaturesError, ValueError):
    """A feature spec value is invalid (an embedding version, a dimension, ...)."""


class SpecMismatchError(SpecError):
    """Two specs (e.g. a model artifact's and a feature store's) disagree."""


class EmbeddingViewsMismatchError(SpecMismatchError):
    """A model was trained on other embedding views (versions, dimensions or their order) than the
    spec it is checked against names."""


class IdMapMismatchError(SpecMismatchError):
    """A model artifact, or the id map files beside spec.json, do not match the id maps the spec
    was built with: the same code would name another item / user."""


def embedding_view_name(version: int) -> str:
    """Feast feature view holding encoder `version`'s embeddings: item_moon_embedding_v<version>."""
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version <= 0:
        raise SpecError(f"embedding version must be a positive integer, got {version!r}")
    return f"item_moon_embedding_v{version}"


@dataclass(frozen=True)
class CategoricalFeature:
    """A string-valued attribute stored in Feast as Int64 codes: vocabulary[i] -> i + 1; 0 = unknown."""

    name: str
    vocabulary: tuple[str, ...]

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary) + 1

    def encode(self, values) -> np.ndarray:
        codes = pd.Categorical(pd.Series(values).astype(str), categories=list(self.vocabulary)).codes
        return (codes.astype(np.int64) + 1)  # unseen values get code -1 -> 0


@dataclass(frozen=True)
class EmbeddingSpec:
    version: int
    dim: int

    def __post_init__(self):
        embedding_view_name(self.version)  # validates the version
        if self.dim not in SUPPORTED_EMBEDDING_DIMS:
            raise SpecError(f"embedding dim {self.dim} unsupported: use a multiple of 16 from 16 to 1024 "
                            "(`moon-features encoder embed --dim D` picks one of the encoder's served sizes)")

    @property
    def view_name(self) -> str:
        return embedding_view_name(self.version)


def embedding_views(embedding) -> tuple[EmbeddingSpec, ...]:
    """None, one EmbeddingSpec or a sequence of them, as the tuple FeatureSpec.embeddings holds."""
    if embedding is None:
        return ()
    views = (embedding,) if isinstance(embedding, EmbeddingSpec) else tuple(embedding)
    if not all(isinstance(e, EmbeddingSpec) for e in views):
        raise SpecError(f"embedding views must be EmbeddingSpec(version, dim), got {views!r}")
    versions = [e.version for e in views]
    if len(set(versions)) != len(versions):
        raise SpecError(f"embedding versions {versions} name a view twice; name each version once")
    return views


def describe_views(views: tuple[EmbeddingSpec, ...]) -> str:
    """'item_moon_embedding_v1 (d=32), item_moon_embedding_v2 (d=64)', or 'none'."""
    return ", ".join(f"{e.view_name} (d={e.dim})" for e in views) or "none"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    max_user_id: int
    max_item_id: int
    user_categorical: tuple[CategoricalFeature, ...] = ()
    item_categorical: tuple[CategoricalFeature, ...] = ()
    user_dense: tuple[str, ...] = ()
    item_dense: tuple[str, ...] = ()
    max_len: int = 50
    sequence_attribute: str | None = None  # item attribute attached to every history item
    # the item-embedding views the models read, concatenated in this order into one content vector
    # per item; spec.json keeps the one-view form {"embedding": {...}} (old files load unchanged)
    # and writes "embeddings": [...] only for several views
    embeddings: tuple[EmbeddingSpec, ...] = ()
    # fingerprint of the item / user id maps (idmap.DatasetIds.fingerprint): a code means one raw id
    # only under one map; None in specs written before the maps existed (then nothing is checked)
    id_maps: str | None = None
    # dense feature -> [mean, std] of the catalogue / users at `features build`: models read
    # standardised values (batching.row_arrays); empty in specs written before (values read raw)
    dense_stats: dict = field(default_factory=dict, hash=False)
    # per-request categoricals, columns of the entity rows (fields.ContextFeature); spec.json has
    # the key only when there are some, so older specs keep their fingerprint
    context: tuple[ContextFeature, ...] = ()
    # behaviour sequences besides the main one (fields.SequenceSpec: e.g. purchases beside every
    # positive); spec.json has the key only when there are some, so older specs keep their fingerprint
    sequences: tuple[SequenceSpec, ...] = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "embeddings", embedding_views(self.embeddings))
        names = [q.name for q in self.sequences]
        if len(set(names)) != len(names):
            raise SequenceSpecError(f"sequences {names} name one twice; name each once")

    # --- embedding views --------------------------------------------------------------
    @property
    def embedding(self) -> EmbeddingSpec | None:
        """The one embedding view (None without one); a spec with several has no single one."""
        if len(self.embeddings) > 1:
            raise SpecError(f"this spec has {len(self.embeddings)} embedding views ({describe_views(self.embeddings)}); "
                            "read spec.embeddings, not spec.embedding")
        return self.embeddings[0] if self.embeddings else None

    @property
    def embedding_versions(self) -> tuple[int, ...]:
        return tuple(e.version for e in self.embeddings)

    @property
    def embedding_dim(self) -> int | None:
        """The width of the models' content vector: the views' dimensions summed; None without views."""
        return sum(e.dim for e in self.embeddings) if self.embeddings else None

    # --- derived names --------------------------------------------------------------
    @property
    def feature_service_name(self) -> str:
        suffix = "".join(f"_v{v}" for v in self.embedding_versions)
        return f"ctr_{self.name}{'_moon' + suffix if suffix else '_ids'}".replace("-", "_")

    def fields(self) -> tuple:
        """The typed fields (moon_features.fields), in the order the model's inputs list them.

        Built once per spec (it is frozen) and kept: serving's row_arrays reads it per request."""
        if "_fields" not in self.__dict__:
            object.__setattr__(self, "_fields", self._build_fields())
        return self.__dict__["_fields"]

    def _build_fields(self) -> tuple:
        stats = self.dense_stats

        def dense(names, group, view):
            return [DenseFeature(n, group, view, *stats.get(n, (0.0, 1.0))) for n in names]

        out = [IdFeature("user_id", self.max_user_id + 1, "user"), IdFeature("item_id", self.max_item_id + 1, "item")]
        out += [CategoricalField(f.name, f.vocab_size, "user", USER_PROFILE_VIEW) for f in self.user_categorical]
        out += dense(self.user_dense, "user", USER_PROFILE_VIEW)
        out += [CategoricalField(f.name, f.vocab_size, "item", ITEM_PROFILE_VIEW) for f in self.item_categorical]
        out += dense(self.item_dense, "item", ITEM_PROFILE_VIEW)
        out += list(self.context)
        out.append(SequenceFeature("hist_item_id", "item_id", SEQUENCE_VIEW, ("hist_item_ids", "hist_len")))
        if self.sequence_attribute:
            out.append(SequenceFeature(f"hist_{self.sequence_attribute}", self.sequence_attribute, SEQUENCE_VIEW))
        out += [SequenceFeature(q.field_name, "item_id", q.view_name, (q.ids_column, q.len_column), sequence=q.name)
                for q in self.sequences]
        several = len(self.embeddings) > 1
        out += [EmbeddingFeature(f"{EMBEDDING_FIELD}_v{e.version}" if several else EMBEDDING_FIELD, e.version, e.dim,
                                 e.view_name) for e in self.embeddings]
        return tuple(out)

    def feature_refs(self) -> list[str]:
        """Feature references `view:feature` that a training row / online request needs: the
        columns of every field read from a view (ids and context come with the entity rows)."""
        return [f"{f.source}:{c}" for f in self.fields() if f.source != ENTITY_ROWS for c in f.columns]

    def item_feature(self, name: str) -> CategoricalFeature:
        for f in self.item_categorical:
            if f.name == name:
                return f
        raise KeyError(f"no item categorical feature {name!r}")

    def model_inputs(self, use_moon: bool = True) -> ModelInputs:
        fields = self.fields()
        moon = sum(f.dim for f in fields if f.kind == "embedding") or None  # the views, concatenated
        return ModelInputs(
            sparse=tuple(SparseField(f.name, f.vocab_size, f.group) for f in fields if f.kind in SPARSE_KINDS),
            dense=tuple(f.name for f in fields if f.kind == "dense"),
            sequences=tuple(SequenceField(f.name, f.target, f.sequence) for f in fields if f.kind == "sequence"),
            max_len=self.max_len,
            moon_dim=moon if use_moon else None,
        )

    def with_embedding(self, embedding) -> "FeatureSpec":
        """This spec with other embedding views: None, one EmbeddingSpec or a sequence of them."""
        return replace(self, embeddings=embedding_views(embedding))

    def for_model(self, use_moon: bool) -> "FeatureSpec":
        """The spec a model depends on: an id-only model does not pin an embedding version."""
        return self if use_moon else self.with_embedding(None)

    # --- persistence ------------------------------------------------------------------
    def to_dict(self) -> dict:
        views = [asdict(e) for e in self.embeddings]
        # one view (or none) keeps the key and value of the spec.json files written before several existed
        key, value = ("embeddings", views) if len(views) > 1 else ("embedding", views[0] if views else None)
        d = {(key if k == "embeddings" else k): (value if k == "embeddings" else v) for k, v in asdict(self).items()}
        d["context"] = [f.to_dict() for f in self.context]
        if not d["context"]:
            del d["context"]  # the spec.json (and fingerprint) of a spec without context, as before
        d["sequences"] = [q.to_dict() for q in self.sequences]
        if not d["sequences"]:
            del d["sequences"]  # likewise for a spec with the main behaviour sequence only
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        d = dict(d)
        d["user_categorical"] = tuple(CategoricalFeature(f["name"], tuple(f["vocabulary"]))
                                      for f in d.get("user_categorical", ()))
        d["item_categorical"] = tuple(CategoricalFeature(f["name"], tuple(f["vocabulary"]))
                                      for f in d.get("item_categorical", ()))
        d["user_dense"] = tuple(d.get("user_dense", ()))
        d["item_dense"] = tuple(d.get("item_dense", ()))
        d["dense_stats"] = {k: [float(m), float(sd)] for k, (m, sd) in d.get("dense_stats", {}).items()}
        one = d.pop("embedding", None)
        d["embeddings"] = tuple(EmbeddingSpec(**e) for e in d.get("embeddings", [one] if one else []))
        d["context"] = tuple(ContextFeature(f["name"], tuple(f["vocabulary"])) for f in d.get("context", ()))
        d["sequences"] = tuple(SequenceSpec(q["name"], tuple(q["event_types"])) for q in d.get("sequences", ()))
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSpec":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def fingerprint(self) -> str:
        d = self.to_dict()
        d.pop("extra", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def check_compatible(self, other: "FeatureSpec", what: str = "feature store") -> None:
        """Raise SpecMismatchError naming the first difference between self (the model's) and other."""
        mine, theirs = self.to_dict(), other.to_dict()
        if mine.get("id_maps") and theirs.get("id_maps") and mine["id_maps"] != theirs["id_maps"]:
            raise IdMapMismatchError(
                f"the model was trained under id maps {mine['id_maps']} but the {what} has {theirs['id_maps']}: "
                "its codes now name other items / users (the catalogue or the users changed, and `features "
                "build` mapped them anew). Retrain the model on this repository (`moon-features train`), "
                "or point at the repository it was trained on")
        if self.embeddings != other.embeddings:
            raise EmbeddingViewsMismatchError(
                f"the model was trained on the embedding views [{describe_views(self.embeddings)}] but the {what} "
                f"has [{describe_views(other.embeddings)}]; retrain on the {what}'s views (`moon-features train`), "
                "or point at the repository the model was trained on (`features build --embedding-versions` "
                "picks a repository's views)")
        for key in ("id_maps", "embedding", "embeddings"):
            mine.pop(key, None)
        for key in mine:
            if key != "extra" and mine[key] != theirs.get(key):
                raise SpecMismatchError(
                    f"the model was trained with {key}={_short(mine[key])} but the {what} has "
                    f"{key}={_short(theirs.get(key))}; retrain, or point at the store the model was trained on")

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_dataset(cls, ds, max_len: int = 50, embedding=None,
                     max_user_id: int | None = None, max_item_id: int | None = None,
                     context_columns=(), sequences=()) -> "FeatureSpec":
        """Vocabularies from the data; id ranges leave room for ids yet to come if given.

        embedding: None, one EmbeddingSpec or a sequence of them (several views, concatenated in
        this order); context_columns: columns of the interaction log to train on as context features;
        sequences: SequenceSpecs of behaviour sequences besides the main one (checked against the log)."""
        meta = ds.meta

        def vocab(df, col):
            return CategoricalFeature(col, tuple(sorted(df[col].dropna().astype(str).unique())))

        def stats(df, col):
            v = df[col].astype(float)
            std = float(v.std()) if v.notna().sum() > 1 else 0.0
            return [float(v.mean()) if v.notna().any() else 0.0, std if std > 0 else 1.0]

        return cls(
            name=meta.name,
            max_user_id=int(max_user_id or ds.users["user_id"].max()),
            max_item_id=int(max_item_id or ds.items["item_id"].max()),
            user_categorical=tuple(vocab(ds.users, c) for c in meta.user_categorical),
            item_categorical=tuple(vocab(ds.items, c) for c in meta.item_categorical),
            user_dense=tuple(meta.user_dense),
            item_dense=tuple(meta.item_dense),
            max_len=max_len,
            sequence_attribute=meta.sequence_attribute,
            embeddings=embedding_views(embedding),
            dense_stats={**{c: stats(ds.users, c) for c in meta.user_dense},
                         **{c: stats(ds.items, c) for c in meta.item_dense}},
            context=context_features(ds, context_columns),
            sequences=checked_sequences(ds, sequences),
        )


def checked_sequences(ds, sequences) -> tuple[SequenceSpec, ...]:
    """The sequences, each of whose event types occurs among the log's positive events."""
    sequences = tuple(sequences)
    if not sequences:
        return ()
    log = ds.interactions
    if EVENT_TYPE_COLUMN not in log.columns:
        raise SequenceSpecError(f"sequences {[q.name for q in sequences]} filter on the interaction log's "
                                f"{EVENT_TYPE_COLUMN!r} column, which it lacks: add it (e.g. `data generate "
                                "--event-types`), or build without --sequence")
    seen = set(log.loc[log["label"] == 1, EVENT_TYPE_COLUMN].dropna().astype(str))
    for q in sequences:
        missing = sorted(set(q.event_types) - seen)
        if missing:
            raise SequenceSpecError(f"sequence {q.name!r}: no positive event of type(s) {missing} in the log "
                                    f"(its positive event types: {sorted(seen) or 'none'})")
    return sequences


def context_features(ds, columns) -> tuple[ContextFeature, ...]:
    """A ContextFeature per named interaction column, its vocabulary the column's values."""
    meta = ds.meta
    taken = set(ENTITY_ROW_COLUMNS) | set(meta.item_categorical + meta.item_dense + meta.user_categorical
                                          + meta.user_dense) | {EMBEDDING_FIELD}
    out = []
    for name in columns:
        if name in taken or name.startswith("hist_") or name in {f.name for f in out}:
            raise ContextColumnError(f"context column {name!r} clashes with an id, label, profile or history "
                                     "field (or is named twice); rename the column in the interaction log")
        if name not in ds.interactions.columns:
            have = sorted(set(ds.interactions.columns) - set(ENTITY_ROW_COLUMNS))
            raise ContextColumnError(f"the interaction log has no column {name!r} to use as a context feature "
                                     f"(its other columns: {have or 'none'})")
        out.append(ContextFeature.from_column(name, ds.interactions[name]))
    return tuple(out)


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
