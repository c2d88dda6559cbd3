"""Where a registered feature view's values live in Feast's online layout, and how to decode them.

A `ViewLayout` is resolved once from the registry (registry calls are slow; a request must not
make any): the name Feast hashes fields with (versioned when the registry enables online
feature-view versioning), the join key, and per feature its Redis hash field and value kind.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from feast import FeatureView
from feast.infra.online_stores.helpers import compute_versioned_name
from feast.types import Array, Float32, Int64

from . import redis_codec as codec
from .definitions import EMBEDDING_DIM_TAG
from .errors import OnlineStoreDataError

INT64, FLOAT32, INT64_LIST, FLOAT32_LIST = "int64", "float32", "int64_list", "float32_list"


def _kind(dtype) -> str | None:
    """The value kinds moon-features stores; anything else is left to stock Feast."""
    for feast_type, kind in ((Int64, INT64), (Float32, FLOAT32), (Array(Int64), INT64_LIST),
                             (Array(Float32), FLOAT32_LIST)):
        if dtype == feast_type:
            return kind
    return None


@dataclass(frozen=True)
class FeatureLayout:
    name: str
    kind: str
    field: bytes          # Redis hash field: mmh3("<view>:<feature>")
    dim: int | None = None  # float32_list only

    def decode(self, values: list) -> tuple[np.ndarray, np.ndarray]:
        """(values, found) for one feature of many entities; missing values are zeros / empty."""
        if self.kind == INT64:
            return codec.decode_int64s(values)
        if self.kind == FLOAT32:
            return codec.decode_floats(values)
        if self.kind == FLOAT32_LIST:
            matrix, found, bad = codec.decode_float_lists(values, self.dim)
            if bad.any():
                raise OnlineStoreDataError(
                    f"{self.name}: {int(bad.sum())} stored vectors are not {self.dim} float32 values "
                    f"(rows {np.flatnonzero(bad)[:5].tolist()}); re-materialize the view")
            return matrix, found
        lists = [codec.decode_int64_list(v) for v in values]
        found = np.array([x is not None for x in lists], dtype=bool)
        out = np.empty(len(lists), dtype=object)
        for i, x in enumerate(lists):
            out[i] = x if x is not None else np.zeros(0, np.int64)
        return out, found


@dataclass(frozen=True)
class ViewLayout:
    view: str            # the registered name
    stored_name: str     # the name Feast hashes fields with
    join_key: str
    features: tuple[FeatureLayout, ...]

    @property
    def fields(self) -> list[bytes]:
        return [f.field for f in self.features]

    @property
    def ts_field(self) -> bytes:
        return codec.timestamp_field(self.stored_name)

    def feature(self, name: str) -> FeatureLayout:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"{self.view} has no feature {name!r}")

    @classmethod
    def of(cls, fv: FeatureView, versioning: bool = False) -> "ViewLayout":
        if len(fv.join_keys) != 1:
            raise ValueError(f"{fv.name}: the fast paths support one join key, got {fv.join_keys}")
        stored = compute_versioned_name(fv, versioning)
        features = []
        for f in fv.features:
            kind = _kind(f.dtype)
            if kind is None:
                raise ValueError(f"{fv.name}.{f.name}: dtype {f.dtype} has no fast decoder")
            dim = None
            if kind == FLOAT32_LIST:
                tag = (f.tags or {}).get(EMBEDDING_DIM_TAG) or fv.tags.get(EMBEDDING_DIM_TAG)
                if tag is None:
                    raise ValueError(f"{fv.name}.{f.name}: Array(Float32) without a {EMBEDDING_DIM_TAG} tag")
                dim = int(tag)
            features.append(FeatureLayout(f.name, kind, codec.feature_field(stored, f.name), dim))
        return cls(fv.name, stored, fv.join_keys[0], tuple(features))


def versioning_enabled(config) -> bool:
    registry = getattr(config, "registry", None)
    return bool(getattr(registry, "enable_online_feature_view_versioning", False))
