"""The lab's data: one dataset, one time-based CTR split, and the encoder's leak-free training log.

* CTR rows: every interaction, in the MovieLens CTR protocol (data.movielens_ctr, the one of
  bench/ctr_quality.py; `dataset_ctr_arrays` below builds the same fields from any dataset
  folder in the canonical layout). Split A of that protocol: global time order 80 / 10 / 10; a
  fixed set of cold items has its rows removed from train / validation and is reported
  separately on test.
* The encoder sees only interactions strictly before the first test row's time, minus every
  interaction with a cold item: neither the CTR test period nor the cold items' behaviour leak
  into the embeddings. Held-out co-engagement pairs (for the recall metrics) come from the
  test period.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ctr_models import ModelInputs, SequenceField, SparseField

from ..data import movielens_ctr
from ..data.layout import Dataset, load_dataset
from ..data.movielens import read_movielens, resolve_source
from ..data.sequences import history_matrix
from ..data.synthetic import generate_shop
from .presets import LabError, LabPreset

# -- CTR arrays from any dataset folder ----------------------------------------------------------
def _codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Categorical values -> ids 1..n (0 = padding / unknown) and the vocabulary size n + 1."""
    cat = pd.Categorical(values.astype(str))
    return cat.codes.astype(np.int64) + 1, len(cat.categories) + 1


def dataset_ctr_arrays(ds: Dataset, max_len: int) -> tuple[dict[str, np.ndarray], ModelInputs]:
    """CTRData arrays for every interaction of `ds`, the fields of bench/ctr_quality.py generalised:
    user_id, item_id, the item and user categorical attributes, the item dense attributes
    (standardised), and the user's last `max_len` positive items strictly before the event
    (ties in item-id order) with their `sequence_attribute`. Plus "timestamp" (microseconds)."""
    ev = ds.interactions[["user_id", "item_id", "event_timestamp", "label"]].copy()
    ev["ts"] = (ev["event_timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    ev = ev.sort_values(["user_id", "ts", "item_id"], kind="mergesort").reset_index(drop=True)
    u, it, ts = (ev[c].to_numpy(np.int64) for c in ("user_id", "item_id", "ts"))
    pos = ev["label"].to_numpy() == 1
    items = ds.items.set_index("item_id")
    n_items = int(max(items.index.max(), it.max())) + 1
    users = ds.users.set_index("user_id")
    n_users = int(max(users.index.max(), u.max())) + 1

    arrays = {"user_id": u, "item_id": it}
    sparse = [SparseField("user_id", n_users, "user"), SparseField("item_id", n_items, "item")]
    item_tables = {}
    for col in ds.meta.item_categorical:
        codes, vocab = _codes(items[col])
        table = np.zeros(n_items, np.int64)
        table[items.index.to_numpy()] = codes
        item_tables[col] = table
        arrays[col] = table[it]
        sparse.append(SparseField(col, vocab, "item"))
    for col in ds.meta.user_categorical:
        codes, vocab = _codes(users[col])
        table = np.zeros(n_users, np.int64)
        table[users.index.to_numpy()] = codes
        arrays[col] = table[u]
        sparse.append(SparseField(col, vocab, "user"))
    dense = []
    for col in ds.meta.item_dense:
        v = items[col].astype(float)
        table = np.zeros(n_items, np.float32)
        table[items.index.to_numpy()] = ((v - v.mean()) / (v.std() or 1.0)).fillna(0).to_numpy()
        arrays[col] = table[it]
        dense.append(col)

    hist, hist_len = history_matrix(u, ts, it, pos, max_len)
    arrays["hist_item_id"] = hist
    sequences = [SequenceField("hist_item_id", "item_id")]
    seq_attr = ds.meta.sequence_attribute
    if seq_attr in item_tables:
        arrays[f"hist_{seq_attr}"] = item_tables[seq_attr][hist]
        sequences.append(SequenceField(f"hist_{seq_attr}", seq_attr))
    arrays.update(hist_len=hist_len, label=pos.astype(np.float32), timestamp=ts)
    return arrays, ModelInputs(sparse=tuple(sparse), dense=tuple(dense), sequences=tuple(sequences), max_len=max_len)


# -- the lab's data ------------------------------------------------------------------------------
@dataclass
class LabData:
    dataset: Dataset                  # the catalogue and the full log (the encoder never gets all of it)
    source: str                       # "movielens" | "folder"
    src: Path                         # the folder it was read from
    ts_unit: str                      # unit of arrays["timestamp"]: "s" (MovieLens protocol) or "us"
    n_cold: int
    _ctr: dict = field(default_factory=dict)

    def ctr(self, max_len: int) -> tuple[dict[str, np.ndarray], ModelInputs]:
        """CTR arrays and model inputs with behaviour sequences of length `max_len` (cached)."""
        if max_len not in self._ctr:
            if self.source == "movielens":
                mlc = movielens_ctr.load(self.src, max_len=max_len)
                self._ctr[max_len] = (mlc.arrays, mlc.inputs)
            else:
                self._ctr[max_len] = dataset_ctr_arrays(self.dataset, max_len)
        return self._ctr[max_len]

    def split(self, max_len: int) -> dict[str, np.ndarray]:
        """Row indices train / val / test / cold (split A of data.movielens_ctr)."""
        arrays, _ = self.ctr(max_len)
        return movielens_ctr.make_split(arrays, "A", n_cold=self.n_cold)

    def cold_item_ids(self, max_len: int) -> np.ndarray:
        arrays, _ = self.ctr(max_len)
        return movielens_ctr.cold_items(arrays["item_id"], self.n_cold)

    def cutoff(self, max_len: int) -> pd.Timestamp:
        """Time of the first CTR test row: the encoder learns only from what happened before."""
        arrays, _ = self.ctr(max_len)
        test = movielens_ctr.split_global_time(arrays)[2]
        return pd.Timestamp(int(arrays["timestamp"][test].min()), unit=self.ts_unit, tz="UTC")

    def encoder_logs(self, max_len: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(training log of the encoder, held-out log): before the cutoff without cold items; after."""
        log = self.dataset.interactions
        cut = self.cutoff(max_len)
        before = log["event_timestamp"] < cut
        cold = log["item_id"].isin(set(self.cold_item_ids(max_len).tolist()))
        return log[before & ~cold].reset_index(drop=True), log[~before].reset_index(drop=True)

    def encoder_dataset(self, max_len: int) -> Dataset:
        return replace(self.dataset, interactions=self.encoder_logs(max_len)[0])


def load_lab_data(preset: LabPreset, data: str | Path | None, run_dir: Path, progress: bool = True) -> LabData:
    """The preset's data: a synthetic shop generated into `<run>/data` (dataset="synthetic"),
    MovieLens-100k with posters read in place (never copied), or a dataset folder."""
    if preset.dataset == "synthetic" and data is None:
        root = run_dir / "data" / f"shop{preset.shop_items}_seed{preset.seed}"
        if (root / "dataset.json").exists():
            ds = load_dataset(root)
        else:
            ds = generate_shop(root, n_items=preset.shop_items, seed=preset.seed, progress=progress)
        source, src, unit = "folder", root, "us"
    elif preset.dataset == "movielens" or (data is not None and (Path(data) / "ml-100k.inter").exists()):
        src = resolve_source(data)
        ds, source, unit = read_movielens(src), "movielens", "s"
    else:
        if data is None:
            raise LabError(f"lab preset {preset.name!r} reads a dataset folder: pass --data DIR")
        src = Path(data)
        ds, source, unit = load_dataset(src), "folder", "us"
    n_items = int(ds.items["item_id"].nunique())
    n_cold = int(preset.cold_items) if preset.cold_items >= 1 else max(1, round(preset.cold_items * n_items))
    return LabData(ds, source, src, unit, n_cold)
