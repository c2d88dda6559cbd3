"""An in-memory columnar CTR dataset: numpy arrays in, CTRBatch out, no per-row Python.

Arrays (N rows; names follow ModelInputs):
    <sparse field>   int64   [N]      ids, 0 = padding / unknown
    <dense field>    float32 [N]
    <sequence field> int64   [N, L]   left-aligned, oldest first, 0 = padding
    hist_len         int64   [N]
    hist_<g>_len     int64   [N]      for each sequence group g besides the main one (inputs.length_name)
    label            float32 [N]      optional (needed for training / evaluation)
Optionally a MOON table float32 [V, D] indexed by item id (row 0 = zeros, the padding / unknown
item); item_emb and hist_emb are gathered from it per batch, so the dataset holds each item's
vector once instead of N x L times.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .batch import CTRBatch
from .inputs import ModelInputs, length_name


class DataError(ValueError):
    """The arrays or the MOON table handed to CTRData do not fit the ModelInputs."""


class CTRData:
    def __init__(self, arrays: dict[str, np.ndarray], inputs: ModelInputs,
                 moon_table: np.ndarray | None = None, item_field: str = "item_id"):
        self.inputs = inputs
        self.item_field = item_field
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self._check_arrays()
        self.moon_table = None
        main = [s for s in inputs.sequences if not s.group]  # the sequence group whose items have MOON vectors
        self.hist_item_field = next((s.name for s in main if s.target == item_field), None)
        if inputs.moon_dim is not None:  # an id-only model never pays for the gather
            if moon_table is None:
                raise DataError(f"ModelInputs.moon_dim={inputs.moon_dim} but no moon_table was given")
            self.moon_table = torch.from_numpy(self._check_moon(moon_table))

    # -- validation -------------------------------------------------------------------------
    def _need(self, name: str, ndim: int) -> np.ndarray:
        a = self.arrays.get(name)
        if a is None:
            raise DataError(f"missing array {name!r}; have {sorted(self.arrays)}")
        if a.ndim != ndim:
            raise DataError(f"array {name!r} has {a.ndim} dimensions, expected {ndim}")
        return a

    def _check_arrays(self) -> None:
        inputs = self.inputs
        n = len(self._need("hist_len", 1))
        for f in inputs.sparse:
            self.arrays[f.name] = self._need(f.name, 1).astype(np.int64, copy=False)
        for name in inputs.dense:
            self.arrays[name] = self._need(name, 1).astype(np.float32, copy=False)
        for s in inputs.sequences:
            a = self._need(s.name, 2).astype(np.int64, copy=False)
            if a.shape[1] > inputs.max_len:
                raise DataError(f"sequence {s.name!r} has length {a.shape[1]} > max_len {inputs.max_len}; "
                                "keep the most recent max_len items when building the arrays")
            self.arrays[s.name] = a
        for name in ["hist_len"] + [length_name(g) for g in inputs.sequence_groups]:
            self.arrays[name] = self._need(name, 1).astype(np.int64, copy=False)
        if "label" in self.arrays:
            self.arrays["label"] = self._need("label", 1).astype(np.float32, copy=False)
        for k, a in self.arrays.items():
            if len(a) != n:
                raise DataError(f"array {k!r} has {len(a)} rows, hist_len has {n}")
        self.n = n

    def _check_moon(self, table: np.ndarray) -> np.ndarray:
        table = np.ascontiguousarray(table, dtype=np.float32)
        if table.ndim != 2 or table.shape[1] != self.inputs.moon_dim:
            raise DataError(f"moon_table has shape {table.shape}, expected [V, {self.inputs.moon_dim}]")
        if not np.isfinite(table).all():
            bad = np.where(~np.isfinite(table).all(axis=1))[0][:5]
            raise DataError(f"moon_table has NaN/inf rows (item ids {bad.tolist()}...); re-run the embedding job")
        if np.any(table[0] != 0):
            raise DataError("moon_table row 0 must be zeros: it is the padding / unknown item")
        if self.hist_item_field is None:
            raise DataError(f"MOON needs a sequence field over {self.item_field!r} to gather hist_emb")
        return table

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["label"]

    def column(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def subset(self, idx: np.ndarray) -> "CTRData":
        out = object.__new__(CTRData)
        out.__dict__.update(self.__dict__)
        out.arrays = {k: v[idx] for k, v in self.arrays.items()}
        out.n = len(out.arrays["hist_len"])
        return out

    def _gather(self, ids: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(ids)
        v = self.moon_table.shape[0]
        t = torch.where((t >= 0) & (t < v), t, torch.zeros_like(t))  # unknown item -> zero row
        return F.embedding(t, self.moon_table)

    def batch(self, idx: np.ndarray | slice) -> CTRBatch:
        a = self.arrays
        inputs = self.inputs
        b = CTRBatch(
            sparse={f.name: torch.from_numpy(a[f.name][idx]) for f in inputs.sparse},
            hist_len=torch.from_numpy(a["hist_len"][idx]),
            dense={n: torch.from_numpy(a[n][idx]) for n in inputs.dense},
            hist={s.name: torch.from_numpy(a[s.name][idx]) for s in inputs.sequences},
            hist_lens={g: torch.from_numpy(a[length_name(g)][idx]) for g in inputs.sequence_groups},
            label=torch.from_numpy(a["label"][idx]) if "label" in a else None,
        )
        if self.moon_table is not None:
            b.item_emb = self._gather(a[self.item_field][idx])
            b.hist_emb = self._gather(a[self.hist_item_field][idx])
        return b

    def batch_rows(self, batch_size: int, shuffle: bool = False, seed: int = 0,
                   epoch: int = 0) -> Iterator[np.ndarray | slice]:
        """The row indices of each mini-batch: in order, or shuffled by (seed, epoch) so reruns
        (and every data-parallel worker) see the same batches."""
        if shuffle:
            order = np.random.default_rng([seed, epoch]).permutation(self.n)
            for s in range(0, self.n, batch_size):
                yield np.sort(order[s:s + batch_size])
        else:
            for s in range(0, self.n, batch_size):
                yield slice(s, s + batch_size)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0,
                epoch: int = 0) -> Iterator[CTRBatch]:
        """Mini-batches in order, or shuffled by (seed, epoch) so reruns see the same order."""
        for rows in self.batch_rows(batch_size, shuffle, seed, epoch):
            yield self.batch(rows)

    def num_batches(self, batch_size: int) -> int:
        return (self.n + batch_size - 1) // batch_size
