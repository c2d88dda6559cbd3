"""Reshape a dataset the way real catalogues arrive, to test the "bring your own catalogue" path.

* `purchase_only`: keep the positives only (an implicit-feedback log: purchases, no impressions);
* `sparse_ids`: natural ids (article numbers up to ~1e9, customer codes as strings with leading zeros);
* `drop_text`: a share of items without a title.

Each returns a new Dataset; `save_dataset` writes it. The synthetic shop plus these is a small
stand-in for a real shop (tests/test_byo_catalogue.py, examples/bring_your_own_catalogue.py).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .layout import Dataset

SPARSE_ITEM_BASE = 100_000_001  # article numbers of 9 digits: up to ~949,551,001 as in the issue


def purchase_only(ds: Dataset) -> Dataset:
    """Keep only label-1 events: what a shop's order table gives (no impressions, no negatives)."""
    inter = ds.interactions[ds.interactions["label"] == 1].reset_index(drop=True)
    return replace(ds, interactions=inter)


def sparse_ids(ds: Dataset, seed: int = 0, string_users: bool = True) -> Dataset:
    """Item ids spread over 9 digits (max close to 949,551,001); user ids as 'C' + 7 digits (text)."""
    rng = np.random.default_rng(seed)
    n = len(ds.items)
    item_new = np.sort(rng.choice(np.arange(SPARSE_ITEM_BASE, 949_551_002, 7), size=n, replace=False))
    item_new[-1] = 949_551_001
    item_of = dict(zip(ds.items["item_id"].to_numpy(), item_new))
    if string_users:
        codes = rng.choice(10**7, size=len(ds.users), replace=False)
        user_new = np.array([f"C{c:07d}" for c in codes], dtype=object)
    else:
        user_new = rng.choice(np.arange(10**9, 2 * 10**9), size=len(ds.users), replace=False)
    user_of = dict(zip(ds.users["user_id"].to_numpy(), user_new))
    items = ds.items.assign(item_id=ds.items["item_id"].map(item_of).astype("int64"))
    users = ds.users.assign(user_id=ds.users["user_id"].map(user_of))
    inter = ds.interactions.assign(item_id=ds.interactions["item_id"].map(item_of).astype("int64"),
                                   user_id=ds.interactions["user_id"].map(user_of))
    if not string_users:
        users["user_id"] = users["user_id"].astype("int64")
        inter["user_id"] = inter["user_id"].astype("int64")
    return replace(ds, items=items, users=users, interactions=inter)


def drop_text(ds: Dataset, share: float = 0.7, seed: int = 0) -> Dataset:
    """Blank the title of `share` of the items (a catalogue where most articles have no text)."""
    rng = np.random.default_rng(seed)
    blank = rng.random(len(ds.items)) < share
    items = ds.items.copy()
    items["title"] = pd.Series(np.where(blank, None, items["title"].to_numpy(object)), index=items.index,
                               dtype=object)
    return replace(ds, items=items)
