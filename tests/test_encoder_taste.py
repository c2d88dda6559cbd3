"""The taste part of the served embedding (encoder/taste.py, #14)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ctr_models.metrics import auc
from moon_features.encoder.taste import TasteHead, click_histories, fit_taste

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _log(rows):
    return pd.DataFrame([{"user_id": u, "item_id": i, "event_timestamp": T0 + pd.Timedelta(seconds=t), "label": y}
                         for u, i, t, y in rows])


def test_click_histories_hold_only_earlier_clicks():
    row_of = {10: 0, 11: 1, 12: 2, 13: 3}
    log = _log([(1, 10, 0, 1), (1, 11, 5, 0), (1, 12, 5, 1), (1, 13, 9, 1),  # 11 and 12 share a second
                (2, 13, 1, 0), (2, 12, 2, 1), (2, 99, 3, 1)])  # 99: not in the catalogue
    ex = click_histories(log, row_of, max_len=2)
    # user 1: rows at t=5 see only item 10; t=9 sees 10 and 12 (11 was not clicked)
    # user 2: the first row has no history; 12 (t=2) has none either; 99 is dropped
    assert ex["target"].tolist() == [1, 2, 3]
    assert ex["hist"].tolist() == [[0, -1], [0, -1], [0, 2]]
    assert ex["label"].tolist() == [0, 1, 1]


def test_purchase_only_log_gets_one_negative_per_row():
    row_of = {i: i - 1 for i in range(1, 21)}
    log = _log([(1, i, i, 1) for i in range(1, 11)])
    ex = click_histories(log, row_of, seed=0)
    assert len(ex["label"]) == 18 and ex["label"].sum() == 9
    assert ex["target"].max() < 20


def test_taste_head_learns_a_taste_the_content_hides():
    """Items have a hidden colour (4 values) that the content shows only through noisy features
    beside a louder block that does not matter;
    users click their favourite colour. Trained on histories, the taste vectors group items by
    colour and their history-mean score ranks held-out impressions."""
    rng = np.random.default_rng(0)
    n_items, n_colours = 200, 4
    colour = rng.integers(0, n_colours, n_items)
    centres = rng.normal(0, 1, (n_colours, 16))
    # the colour block is noisy; a louder block of what does not drive clicks (shape, say) sits beside it
    content = torch.tensor(np.concatenate([centres[colour] + rng.normal(0, 1.0, (n_items, 16)),
                                           rng.normal(0, 3.0, (n_items, 8))], axis=1), dtype=torch.float32)
    rows = []
    for u in range(120):
        favourite = u % n_colours
        for t, item in enumerate(rng.integers(0, n_items, 40)):
            p = 0.8 if colour[item] == favourite else 0.1
            rows.append((u, int(item), t, int(rng.random() < p)))
    log = _log(rows)
    row_of = {i: i for i in range(n_items)}
    train, test = log[log["user_id"] < 90], log[log["user_id"] >= 90]
    head = TasteHead([16, 8], taste_dims=8)
    losses = fit_taste(head, content, click_histories(train, row_of), seed=0, progress=False)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        taste = head(content).numpy()
    sim = taste @ taste.T
    same = colour[:, None] == colour[None, :]
    assert sim[same].mean() > sim[~same].mean() + 0.3
    ex = click_histories(test, row_of)

    def history_score(table):
        mask = (ex["hist"] >= 0)[..., None]
        user = (table[ex["hist"].clip(0)] * mask).sum(1) / mask.sum(1)
        return auc(ex["label"], (user * table[ex["target"]]).sum(1))

    raw = content.numpy() / np.linalg.norm(content.numpy(), axis=1, keepdims=True)
    # the truth allows about 0.83 here; the raw content features, scored the same way, much less
    assert history_score(taste) > max(0.7, history_score(raw) + 0.03)


def test_taste_head_round_trips_its_fitted_state():
    head = TasteHead([6, 4], taste_dims=3)
    content = torch.randn(50, 10)
    fit_taste(head, content, click_histories(_log([]).reindex(columns=["user_id", "item_id", "event_timestamp", "label"]),
                                              {}), progress=False)
    other = TasteHead([6, 4], taste_dims=3)
    other.load_state_dict(head.state_dict())
    other.eval()
    assert torch.equal(head(content), other(content))
    assert head.input_matrix.abs().sum() > 0  # the input projection is fitted even with no examples
