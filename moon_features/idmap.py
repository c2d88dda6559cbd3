"""A user's own ids <-> the dense codes the feature store and the models use.

Models hold one embedding row per id (rows 0..max_id), so an id like 949,551,001 would make a
60 GB table, and a string id (an article number with leading zeros) is no row at all. `features
build` therefore maps each entity's ids to dense codes 1..n (0 stays the padding / unknown id):
the codes key the Feast views and index the models; the map is stored beside spec.json
(<repo>/data/id_map_<entity>.parquet) and serving maps request ids at its boundary.

Ids that are already dense positive integers (max id <= DENSE_FACTOR * n + DENSE_SLACK) keep
their values (an identity map, nothing stored), so existing repositories and the synthetic shop
and MovieLens (ids 1..n) are unchanged.

An id the map does not know (a new user at /events, an unknown candidate) gets a code in the
reserved range [2**62, 2**63): unique per id (a stable hash), so a new user's events key their
own behaviour sequence, and beyond every spec's max id, so the models read it as unknown (0).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import MoonFeaturesError
from .spec import IdMapMismatchError

DENSE_FACTOR, DENSE_SLACK = 4, 1024
RESERVED_START = np.int64(2**62)
MAX_STRING_ID = 256  # characters


class IdMapError(MoonFeaturesError, ValueError):
    """Ids that no map can hold (floats, nulls, mixed types, empty strings); the message says how to fix them."""


def check_ids(values: pd.Series, where: str) -> str:
    """'int' or 'str' for a column of ids; IdMapError naming the fix otherwise."""
    if values.isna().any():
        raise IdMapError(f"{where} has empty (null) ids in rows {list(values.index[values.isna()][:10])}; "
                         "every row needs an id")
    if pd.api.types.is_bool_dtype(values.dtype):
        raise IdMapError(f"{where} holds booleans; ids must be integers (int64) or strings")
    if pd.api.types.is_integer_dtype(values.dtype):
        return "int"
    if pd.api.types.is_float_dtype(values.dtype):
        raise IdMapError(f"{where} holds floats (dtype {values.dtype}); cast ids to int64 "
                         "(df[col].astype('int64')) or, if they have leading zeros, to str")
    kinds = set(map(type, values))
    if kinds <= {str}:
        lengths = values.str.len()
        bad = values.index[(lengths == 0) | (lengths > MAX_STRING_ID)]
        if len(bad):
            raise IdMapError(f"{where}: string ids must have 1..{MAX_STRING_ID} characters; rows {list(bad[:10])}")
        return "str"
    raise IdMapError(f"{where} mixes id types {sorted(k.__name__ for k in kinds)}; use one type: all int64, "
                     "or all str (e.g. df[col].astype(str))")


def _reserved_codes(values) -> np.ndarray:
    """A stable code in [2**62, 2**63) per unknown id (blake2b of its text)."""
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        digest = hashlib.blake2b(str(v).encode(), digest_size=8).digest()
        out[i] = RESERVED_START + np.int64(int.from_bytes(digest, "little") % (2**62))
    return out


@dataclass
class IdMap:
    """One entity's map; `raw` is None for the identity map of dense positive integer ids."""

    entity: str
    raw: np.ndarray | None = None  # sorted unique raw ids; code of raw[i] is i + 1

    def __post_init__(self):
        self._index = pd.Index(self.raw) if self.raw is not None else None

    @property
    def identity(self) -> bool:
        return self.raw is None

    @property
    def max_code(self) -> int | None:
        return None if self.raw is None else len(self.raw)

    @property
    def string_ids(self) -> bool:
        return self.raw is not None and self.raw.dtype == object

    @classmethod
    def fit(cls, values, entity: str) -> "IdMap":
        values = pd.Series(values).reset_index(drop=True)
        kind = check_ids(values, f"{entity}_id")
        if kind == "int":
            unique = np.unique(values.to_numpy(np.int64))
            if len(unique) and unique[0] >= 1 and unique[-1] <= DENSE_FACTOR * len(unique) + DENSE_SLACK:
                return cls(entity)
            return cls(entity, unique)
        return cls(entity, np.array(sorted(set(values)), dtype=object))

    def encode(self, values, unknown: str = "reserved") -> np.ndarray:
        """int64 codes of raw ids. unknown: 'reserved' (a code past every spec) or 'raise'."""
        if self.raw is None:
            arr = np.asarray(values)
            if arr.size == 0:
                return np.zeros(0, dtype=np.int64)
            try:
                if arr.dtype.kind not in "iu":  # never coerce: "7" or 7.5 is not the id 7
                    raise TypeError(arr.dtype)
                return arr.astype(np.int64)
            except (TypeError, ValueError, OverflowError):
                # no values in the message: it may answer an HTTP request, which never echoes input
                raise IdMapError(f"{self.entity} ids of this repository are integers (int64); send them as "
                                 "JSON numbers") from None
        values = np.asarray(values, dtype=self.raw.dtype if self.raw.dtype == object else None)
        if values.dtype.kind in "iu" and self.raw.dtype == object or values.dtype == object and self.raw.dtype != object:
            pos = np.full(len(values), -1)  # an int asked of a string map (or back): unknown, never coerced
        else:
            pos = self._index.get_indexer(values)
        codes = pos.astype(np.int64) + 1
        missing = pos < 0
        if missing.any():
            if unknown == "raise":
                raise IdMapError(f"{self.entity} ids {values[missing][:10].tolist()} are not in the repository's "
                                 "id map; add them to the dataset and run `moon-features features build` again")
            codes[missing] = _reserved_codes(values[missing])
        return codes

    def decode(self, codes) -> np.ndarray:
        """Raw ids of codes 1..n (0 and reserved codes decode to None for a map, to themselves for identity)."""
        codes = np.asarray(codes, dtype=np.int64)
        if self.raw is None:
            return codes
        out = np.full(len(codes), None, dtype=object)
        ok = (codes >= 1) & (codes <= len(self.raw))
        out[ok] = self.raw[codes[ok] - 1]
        return out if self.string_ids or not ok.all() else out.astype(np.int64)

    def fingerprint(self) -> str:
        """A short hash of the map: which raw id each code stands for ('identity' hashes too)."""
        digest = hashlib.sha256(self.entity.encode())
        if self.raw is None:
            digest.update(b"identity")
        else:
            digest.update(str(self.raw.dtype == object).encode())
            digest.update("\x1f".join(map(str, self.raw)).encode())
        return digest.hexdigest()[:16]

    # --- persistence ----------------------------------------------------------------------
    def path(self, data_dir: Path) -> Path:
        return Path(data_dir) / f"id_map_{self.entity}.parquet"

    def save(self, data_dir: str | Path) -> Path | None:
        path = self.path(Path(data_dir))
        if self.raw is None:
            path.unlink(missing_ok=True)  # a stale map of an earlier build would be read as current
            return None
        pd.DataFrame({"raw_id": self.raw, "code": np.arange(1, len(self.raw) + 1)}).to_parquet(path, index=False)
        return path

    @classmethod
    def load(cls, data_dir: str | Path, entity: str) -> "IdMap":
        path = cls(entity).path(Path(data_dir))
        if not path.exists():
            return cls(entity)
        raw = pd.read_parquet(path).sort_values("code")["raw_id"].to_numpy()
        return cls(entity, raw.astype(object) if raw.dtype == object else raw.astype(np.int64))


@dataclass
class DatasetIds:
    """The item and user maps of one dataset / repository."""

    items: IdMap
    users: IdMap

    @classmethod
    def fit(cls, ds) -> "DatasetIds":
        return cls(IdMap.fit(ds.items["item_id"], "item"), IdMap.fit(ds.users["user_id"], "user"))

    @classmethod
    def load(cls, data_dir: str | Path) -> "DatasetIds":
        return cls(IdMap.load(data_dir, "item"), IdMap.load(data_dir, "user"))

    def save(self, data_dir: str | Path) -> None:
        self.items.save(data_dir)
        self.users.save(data_dir)

    def fingerprint(self) -> str:
        """What the spec records (`FeatureSpec.id_maps`): a model or a serving process whose map
        differs would read every code as another item / user."""
        return f"item:{self.items.fingerprint()},user:{self.users.fingerprint()}"

    def check(self, expected: str | None, where: str) -> None:
        """IdMapMismatchError unless these maps are the ones `expected` (a spec's id_maps) names."""
        if expected is not None and self.fingerprint() != expected:
            raise IdMapMismatchError(
                f"the id maps in {where} ({self.fingerprint()}) are not the ones its spec.json was built with "
                f"({expected}): spec.json and data/id_map_*.parquet come from different `features build` runs. "
                "Run `moon-features features build` again (it writes both), then retrain the models on it")

    def summary(self) -> str:
        def one(m: IdMap) -> str:
            return f"{m.entity} ids as given" if m.identity else f"{m.entity} ids -> codes 1..{m.max_code:,}"
        return f"{one(self.items)}, {one(self.users)}"

    def encode_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Entity rows (user_id, item_id, ...) in raw ids -> in codes."""
        return rows.assign(user_id=self.users.encode(rows["user_id"]), item_id=self.items.encode(rows["item_id"]))

    def encode_dataset(self, ds):
        """A copy of `ds` whose id columns hold codes (interactions reference only known ids: validated)."""
        items = ds.items.assign(item_id=self.items.encode(ds.items["item_id"]))
        users = ds.users.assign(user_id=self.users.encode(ds.users["user_id"]))
        inter = ds.interactions.assign(item_id=self.items.encode(ds.interactions["item_id"]),
                                       user_id=self.users.encode(ds.interactions["user_id"]))
        return replace(ds, items=items, users=users, interactions=inter)


def coded_dataset(ds) -> tuple:
    """(`ds` with dense codes for ids, its DatasetIds): what every model-facing command works on."""
    ids = DatasetIds.fit(ds)
    return ids.encode_dataset(ds), ids
