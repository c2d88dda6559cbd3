"""Negative sampling for purchase-only logs (issue #19), the cold-AUC reason, and a quiet CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moon_features.cli import main
from moon_features.data.layout import load_dataset, save_dataset
from moon_features.data.negatives import sample_negatives
from moon_features.data.shop_variants import purchase_only
from moon_features.data.validate import DatasetError, validate_dataset
from moon_features.training.train import metrics_gap

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bought(shop):
    return purchase_only(shop)


def test_negatives_exist_at_their_time_are_never_the_users_own_and_are_seeded(bought):
    out = sample_negatives(bought, per_positive=3, seed=7)
    inter = out.interactions
    pos, neg = inter[inter.label == 1], inter[inter.label == 0]
    assert len(pos) == len(bought.interactions)
    assert len(neg) >= 0.95 * 3 * len(pos)  # a user who bought nearly everything may get fewer
    first_seen = bought.items.set_index("item_id")["first_seen"]
    assert (first_seen.loc[neg.item_id].to_numpy() <= neg.event_timestamp.to_numpy()).all()
    own = set(zip(pos.user_id, pos.item_id))
    assert not any(pair in own for pair in zip(neg.user_id, neg.item_id))
    validate_dataset(out, check_images=False)
    again = sample_negatives(bought, per_positive=3, seed=7).interactions
    pd.testing.assert_frame_equal(inter, again)
    assert not sample_negatives(bought, per_positive=3, seed=8).interactions.equals(inter)


def test_negatives_follow_recent_popularity(bought):
    neg = sample_negatives(bought, per_positive=4, seed=0).interactions.query("label == 0")
    bought_n = bought.interactions.item_id.value_counts()
    drawn = neg.item_id.value_counts().reindex(bought_n.index, fill_value=0)
    assert np.corrcoef(bought_n.to_numpy(), drawn.to_numpy())[0, 1] > 0.5


def _positive_share_by_age(inter: pd.DataFrame, first_seen: pd.Series) -> tuple[float, float]:
    """Share of label-1 rows among rows on items under 3 days old, and on items 7+ days old."""
    since = inter.event_timestamp.reset_index(drop=True) - first_seen.loc[inter.item_id].reset_index(drop=True)
    age = since.dt.total_seconds().to_numpy() / 86400
    inter = inter.reset_index(drop=True)
    return inter.label[age < 3].mean(), inter.label[age >= 7].mean()


def test_a_new_item_is_a_negative_about_as_often_as_an_old_one_that_sells_as_fast(bought):
    """popularity="rate" counts purchases per day the item existed in the window: "new" alone must
    not predict "bought". The count over the window gives a new item one smoothing count, so most
    rows on new items are purchases (what the rate fixes; kept as popularity="count")."""
    first_seen = bought.items.set_index("item_id")["first_seen"]
    new, old = _positive_share_by_age(sample_negatives(bought, per_positive=4, seed=0).interactions, first_seen)
    assert new < 1.25 * old, (new, old)
    new_c, old_c = _positive_share_by_age(
        sample_negatives(bought, per_positive=4, seed=0, popularity="count").interactions, first_seen)
    assert new_c > 1.4 * old_c, (new_c, old_c)
    with pytest.raises(DatasetError, match="popularity must be one of"):
        sample_negatives(bought, popularity="recent")


def test_a_log_without_positives_is_refused(bought):
    empty = bought.interactions.iloc[:0]
    from dataclasses import replace
    with pytest.raises(DatasetError, match="no positives"):
        sample_negatives(replace(bought, interactions=empty))


def test_cli_generates_a_purchase_only_shop_and_samples_negatives(tmp_path, capsys):
    shop = tmp_path / "shop"
    assert main(["data", "generate", "--out", str(shop), "--items", "60", "--purchase-only", "--sparse-ids",
                 "--no-text-share", "0.7"]) == 0
    ds = load_dataset(shop)
    assert (ds.interactions.label == 1).all() and ds.items.item_id.max() == 949_551_001
    assert ds.items.title.isna().mean() > 0.5
    assert main(["data", "sample-negatives", "--data", str(shop), "--out", str(tmp_path / "neg"),
                 "--per-positive", "2"]) == 0
    assert "sampled negatives" in capsys.readouterr().out
    out = load_dataset(tmp_path / "neg")
    assert (out.interactions.label == 0).sum() > 0 and (tmp_path / "neg/images").is_dir()


def test_cold_auc_says_why_it_is_missing():
    assert "every test item was seen in training" in metrics_gap(np.array([]), "cold-item")
    assert "sample-negatives" in metrics_gap(np.ones(5), "cold-item")
    assert metrics_gap(np.array([0, 1]), "cold-item") == ""


def test_a_cli_command_prints_no_deprecation_warning(shop_dir, tmp_path):
    """ibis's fetch_arrow_table() DeprecationWarning is filtered in moon_features/cli.py."""
    env = {**os.environ, "PYTHONWARNINGS": "default", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "moon_features.cli", "features", "build", "--data", str(shop_dir),
                             "--repo", str(tmp_path / "repo")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DeprecationWarning" not in result.stderr + result.stdout
