"""MovieLens-100k as CTR data: the protocol of bench/ctr_quality.py, ctr_throughput.py,
tf_parity.py, ctr_encoder.py and of the lab's MovieLens preset, in the package so an installed
moon-features has it too.

Reads the RecBole atomic files directly (tab-separated, header row) and builds the protocol's
features: label = rating >= 4; user_id, item_id, first genre, age bucket, gender, occupation;
behaviour sequence = the user's items rated >= 4 strictly before the event (ties in item-id
order), the last `max_len`, with their first genres, built from all events.

Splits: A = global time order 80 / 10 / 10; B = per user, the last 10% test and the 10% before
validation. A fixed set of 252 cold items (seed 0) has its rows removed from train and
validation and is reported separately on test.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctr_models import ModelInputs, SequenceField, SparseField

from .sequences import history_matrix

AGE_EDGES = [18, 25, 35, 45, 50, 56]  # -> buckets <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+


@dataclass
class MovieLensCTR:
    arrays: dict[str, np.ndarray]   # CTRData arrays for all 100k events, plus "timestamp"
    inputs: ModelInputs
    items: pd.DataFrame             # item_id, title, year, genres


def read_atomic(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def load(root: str | Path, max_len: int = 50) -> MovieLensCTR:
    root = Path(root)
    inter = read_atomic(root / "ml-100k.inter")
    items = read_atomic(root / "ml-100k.item")
    users = read_atomic(root / "ml-100k.user")

    ev = pd.DataFrame({"user_id": inter.user_id.astype(np.int64), "item_id": inter.item_id.astype(np.int64),
                       "rating": inter.rating.astype(float), "timestamp": inter.timestamp.astype(float).astype(np.int64)})
    items = pd.DataFrame({"item_id": items.item_id.astype(np.int64), "title": items.movie_title,
                          "year": items.release_year, "genres": items["class"]})
    n_items = int(max(items.item_id.max(), ev.item_id.max()))
    genre_names = sorted({g.split(" ")[0] for g in items.genres if g})
    genre_id = {g: i + 1 for i, g in enumerate(genre_names)}  # 0 = padding / none
    item_genre = np.zeros(n_items + 1, np.int64)
    item_genre[items.item_id.to_numpy()] = [genre_id.get(g.split(" ")[0], 0) if g else 0 for g in items.genres]

    users = users.assign(user_id=users.user_id.astype(np.int64))
    n_users = int(max(users.user_id.max(), ev.user_id.max()))
    occ_names = sorted(users.occupation.unique())
    age = np.zeros(n_users + 1, np.int64)
    gender = np.zeros(n_users + 1, np.int64)
    occ = np.zeros(n_users + 1, np.int64)
    uid = users.user_id.to_numpy()
    age[uid] = np.searchsorted(AGE_EDGES, users.age.astype(int).to_numpy(), side="right") + 1
    gender[uid] = np.where(users.gender.to_numpy() == "M", 1, 2)
    occ[uid] = [occ_names.index(o) + 1 for o in users.occupation]

    # events in (user, time, item) order; sequences are built per user with one searchsorted
    ev = ev.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort").reset_index(drop=True)
    u, it, ts = ev.user_id.to_numpy(), ev.item_id.to_numpy(), ev.timestamp.to_numpy()
    pos = ev.rating.to_numpy() >= 4
    hist, hist_len = history_matrix(u, ts, it, pos, max_len)
    arrays = {"user_id": u, "item_id": it, "genre": item_genre[it], "age": age[u], "gender": gender[u],
              "occupation": occ[u], "hist_item_id": hist, "hist_genre": item_genre[hist],
              "hist_len": hist_len, "label": pos.astype(np.float32), "timestamp": ts}
    inputs = ModelInputs(
        sparse=(SparseField("user_id", n_users + 1, "user"), SparseField("item_id", n_items + 1, "item"),
                SparseField("genre", len(genre_names) + 1, "item"), SparseField("age", len(AGE_EDGES) + 2, "user"),
                SparseField("gender", 3, "user"), SparseField("occupation", len(occ_names) + 1, "user")),
        sequences=(SequenceField("hist_item_id", "item_id"), SequenceField("hist_genre", "genre")),
        max_len=max_len)
    return MovieLensCTR(arrays, inputs, items)


# -- splits --------------------------------------------------------------------------------------
def split_global_time(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split A: all events by (timestamp, user_id, item_id); 80 / 10 / 10."""
    order = np.lexsort((a["item_id"], a["user_id"], a["timestamp"]))
    n = len(order)
    return order[: int(0.8 * n)], order[int(0.8 * n): int(0.9 * n)], order[int(0.9 * n):]


def split_per_user(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split B: per user in time order, the last 10% (>= 1) test, the 10% before validation."""
    order = np.lexsort((a["item_id"], a["timestamp"], a["user_id"]))
    u = a["user_id"][order]
    bounds = np.flatnonzero(np.r_[True, u[1:] != u[:-1], True])
    tr, va, te = [], [], []
    for s, e in zip(bounds[:-1], bounds[1:]):
        k = max(1, round(0.1 * (e - s)))
        te.append(order[e - k:e])
        va.append(order[max(s, e - 2 * k):e - k])
        tr.append(order[s:max(s, e - 2 * k)])
    return np.concatenate(tr), np.concatenate(va), np.concatenate(te)


def cold_items(item_ids: np.ndarray, n: int = 252, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.unique(item_ids))[:n]


def make_split(a: dict[str, np.ndarray], split: str, n_cold: int = 252) -> dict[str, np.ndarray]:
    """-> row indices of train / val / test / cold (cold items' events dropped from train and val)."""
    tr, va, te = (split_global_time if split == "A" else split_per_user)(a)
    cold = np.isin(a["item_id"], cold_items(a["item_id"], n_cold))
    return {"train": tr[~cold[tr]], "val": va[~cold[va]], "test": te, "cold": te[cold[te]]}


# -- item embedding tables -----------------------------------------------------------------------
def parquet_table(path: str | Path, n_rows: int) -> np.ndarray:
    """A Parquet of (item_id, embedding list<float32>) -> [n_rows, D] table, row 0 and missing items = zeros."""
    df = pd.read_parquet(path, columns=["item_id", "embedding"])
    ids = df.item_id.astype(np.int64).to_numpy()
    emb = np.stack(df.embedding.to_numpy()).astype(np.float32)
    if not np.isfinite(emb).all():
        raise ValueError(f"{path}: embeddings contain NaN / inf")
    keep = (ids > 0) & (ids < n_rows)
    table = np.zeros((n_rows, emb.shape[1]), np.float32)
    table[ids[keep]] = emb[keep]
    return table


def pca_reduce(table: np.ndarray, dim: int) -> np.ndarray:
    """Centre the item rows, keep the top `dim` principal components, L2-normalise; row 0 stays 0.

    Cuts the per-batch cost of gathering [B, L, D] history vectors; centring also removes the
    common direction that makes raw sentence-embedding cosines all look alike.
    """
    rows = np.flatnonzero(np.abs(table).sum(1) > 0)
    x = table[rows] - table[rows].mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    z = x @ vt[:dim].T
    z /= np.linalg.norm(z, axis=1, keepdims=True).clip(min=1e-8)
    out = np.zeros((len(table), dim), np.float32)
    out[rows] = z
    return out
