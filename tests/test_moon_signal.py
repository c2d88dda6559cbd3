"""The synthetic shop's ground truth and the lab's signal measures (#14)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ctr_models import DIN, DINConfig, ModelInputs, SequenceField, SparseField
from ctr_models.batch import CTRBatch
from ctr_models.metrics import auc
from moon_features.data.synthetic import generate_shop
from moon_features.lab import signal


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    ds = generate_shop(tmp_path_factory.mktemp("shop"), n_items=150, seed=4, image_size=16, progress=False)
    return ds, signal.shop_ctr(ds)


def test_colour_variants_share_the_design_but_not_the_item(shop):
    ds, _ = shop
    items = ds.items
    groups = items.groupby("product_id")
    multi = [g for _, g in groups if len(g) > 1]
    assert multi, "a shop with variant_share=0.3 has products in several colours"
    for g in multi:
        for col in ("category", "pattern", "brand"):
            assert g[col].nunique() == 1
    assert groups.ngroups < len(items)


def test_no_variants_reproduces_one_item_per_product(tmp_path):
    ds = generate_shop(tmp_path, n_items=40, seed=1, image_size=16, variant_share=0.0, progress=False)
    assert (ds.items["product_id"] == ds.items["item_id"]).all()


def test_split_is_by_time_and_cold_items_are_unseen(shop):
    _, s = shop
    a, sp = s.arrays, s.split
    assert a["timestamp"][sp["train"]].max() <= a["timestamp"][sp["test"]].min()
    seen = set(a["item_id"][sp["train"]]) | set(a["item_id"][sp["val"]])
    assert not seen & set(a["item_id"][sp["cold"]])
    assert set(sp["cold"]) <= set(sp["test"])


def test_bayes_limit_beats_the_reference_which_beats_chance(shop):
    ds, s = shop
    y, test = s.arrays["label"], s.split["test"]
    bayes = signal.bayes_scores(ds, s)
    assert np.isfinite(bayes).all()
    ref = signal.reference_lr(s)
    assert auc(y[test], bayes[test]) > auc(y[test], ref[test]) > 0.55


def test_oracle_is_one_hot_and_perfectly_probed(shop):
    _, s = shop
    n_rows = int(s.items.index.max()) + 1
    table = signal.oracle_table(s.items, n_rows)
    ids = s.items.index.to_numpy()
    assert (table[0] == 0).all()
    assert (table[ids].sum(1) == 3).all()  # colour, pattern, category
    codes = signal.attribute_codes(s.items, n_rows)
    assert signal.probe_accuracy(table, codes["colour"], ids) == 1.0
    noise = np.random.default_rng(0).normal(size=table.shape).astype(np.float32)
    assert signal.attribute_recall(table, codes["colour"], ids) > signal.attribute_recall(noise, codes["colour"], ids)


def test_group_recall_finds_the_other_colour_of_a_product():
    groups = np.array([0, 1, 1, 2, 2, 3])
    ids = np.arange(1, 6)
    same = np.eye(4, dtype=np.float32)[groups]  # one vector per product
    assert signal.group_recall(same, groups, ids, k=1) == 1.0
    # items 2 and 3 (one product) each sit next to an item of another product (4, 5)
    crossed = np.array([[0, 0], [1, 0], [0, 1], [0, -1], [0.1, 1], [0.1, -1]], dtype=np.float32)
    assert signal.group_recall(crossed, groups, ids, k=1) == 0.0


def test_attention_on_same_attribute_against_uniform():
    weights = np.array([[0.7, 0.2, 0.1, 0.0]])
    hist = np.array([[5, 6, 5, 0]])
    on_same, uniform = signal.attention_on_same(weights, hist, np.array([5]), np.array([3]))
    assert on_same == pytest.approx(0.8)
    assert uniform == pytest.approx(2 / 3)


def test_din_attention_weights_are_what_it_pools_with():
    torch.manual_seed(0)
    inputs = ModelInputs(sparse=(SparseField("user_id", 5, "user"), SparseField("item_id", 9)),
                         sequences=(SequenceField("hist_item_id", "item_id"),), max_len=4, moon_dim=3)
    model = DIN(DINConfig(use_moon=True, embed_dim=4, moon_proj_dim=4, init_std=0.1), inputs).eval()
    batch = CTRBatch(sparse={"user_id": torch.tensor([1, 2]), "item_id": torch.tensor([3, 4])},
                     hist={"hist_item_id": torch.tensor([[1, 2, 0, 0], [5, 6, 7, 8]])},
                     hist_len=torch.tensor([2, 4]), item_emb=torch.randn(2, 3), hist_emb=torch.randn(2, 4, 3))
    w = model.attention_weights(batch)
    assert torch.allclose(w.sum(1), torch.ones(2), atol=1e-6)  # softmax is the default now
    assert (w[0, 2:] == 0).all()
