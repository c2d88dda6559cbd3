"""Small synthetic CTR data with a planted signal, for tests and examples.

The label is driven by how well the target item matches the user's history: same category as
the history's items, and (with MOON vectors) cosine similarity of the item's vector to the
history's. A model that uses the history learns it; one that ignores it stays near AUC 0.5.
"""
from __future__ import annotations

import numpy as np

from .inputs import ModelInputs, SequenceField, SparseField


def tiny_inputs(n_users: int = 50, n_items: int = 200, n_cats: int = 8, max_len: int = 10,
                moon_dim: int | None = None, dense: tuple[str, ...] = ()) -> ModelInputs:
    return ModelInputs(
        sparse=(SparseField("user_id", n_users + 1, "user"), SparseField("item_id", n_items + 1, "item"),
                SparseField("cat", n_cats + 1, "item")),
        dense=dense,
        sequences=(SequenceField("hist_item_id", "item_id"), SequenceField("hist_cat", "cat")),
        max_len=max_len, moon_dim=moon_dim)


def synthetic_ctr_arrays(inputs: ModelInputs, n: int, seed: int = 0,
                         moon_dim: int = 8) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """-> (arrays for CTRData, MOON table [n_items + 1, moon_dim] with row 0 = zeros)."""
    rng = np.random.default_rng(seed)
    n_users = inputs.sparse_field("user_id").vocab_size - 1
    n_items = inputs.sparse_field("item_id").vocab_size - 1
    n_cats = inputs.sparse_field("cat").vocab_size - 1
    L = inputs.max_len
    item_cat = np.r_[0, rng.integers(1, n_cats + 1, n_items)]
    # MOON vectors cluster by category, so content similarity carries the category signal
    centers = rng.normal(size=(n_cats + 1, moon_dim))
    table = (centers[item_cat] + 0.5 * rng.normal(size=(n_items + 1, moon_dim))).astype(np.float32)
    table[0] = 0
    user = rng.integers(1, n_users + 1, n)
    fav = rng.integers(1, n_cats + 1, n_users + 1)  # each user's favourite category
    hist_len = rng.integers(0, L + 1, n)
    # history: mostly items of the favourite category
    cand = rng.integers(1, n_items + 1, (n, L))
    fav_items = [np.flatnonzero(item_cat == c) for c in range(n_cats + 1)]
    use_fav = rng.random((n, L)) < 0.8
    for c in range(1, n_cats + 1):
        rows = (fav[user] == c)[:, None] & use_fav
        if len(fav_items[c]) and rows.any():
            cand[rows] = rng.choice(fav_items[c], rows.sum())
    hist = np.where(np.arange(L)[None, :] < hist_len[:, None], cand, 0)
    item = rng.integers(1, n_items + 1, n)
    match = (item_cat[item][:, None] == item_cat[hist]) & (hist > 0)
    frac = match.sum(1) / np.maximum(hist_len, 1)
    p = 1 / (1 + np.exp(-(8 * frac - 3.0)))
    arrays = {"user_id": user, "item_id": item, "cat": item_cat[item], "hist_item_id": hist,
              "hist_cat": item_cat[hist], "hist_len": hist_len,
              "label": (rng.random(n) < p).astype(np.float32)}
    for name in inputs.dense:
        arrays[name] = rng.normal(size=n).astype(np.float32)
    return arrays, table
