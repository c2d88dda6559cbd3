"""The synthetic shop and the MovieLens importer."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from moon_features.data.movielens import age_bucket, read_movielens
from moon_features.data.synthetic import generate_shop


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shop_is_deterministic_from_seed(tmp_path, shop_dir):
    again = generate_shop(tmp_path / "again", n_items=200, seed=0, progress=False)
    first = pd.read_parquet(shop_dir / "interactions.parquet")
    pd.testing.assert_frame_equal(again.interactions.reset_index(drop=True), first)
    assert _digest(tmp_path / "again/images/17.png") == _digest(shop_dir / "images/17.png")
    other = generate_shop(tmp_path / "other", n_items=200, seed=1, progress=False)
    assert not other.interactions["label"].equals(first["label"])


def test_shop_items_appear_over_time_and_impressions_respect_arrival(shop):
    assert shop.items["first_seen"].nunique() > 50, "most items should arrive during the log"
    joined = shop.interactions.merge(shop.items[["item_id", "first_seen"]], on="item_id")
    assert (joined["event_timestamp"] >= joined["first_seen"].dt.floor("s")).all()


def test_arrival_span_lets_items_arrive_in_the_test_period(tmp_path, shop):
    """The default (0.9) leaves the last tenth of the log without new items; 1.0 lets them arrive
    until the end, as in a real shop, and changes nothing else of the catalogue."""
    end = shop.interactions["event_timestamp"].max()
    last_tenth = end - (end - shop.interactions["event_timestamp"].min()) * 0.1
    assert (shop.items["first_seen"] < last_tenth).all()
    late = generate_shop(tmp_path / "late", n_items=200, seed=0, progress=False, arrival_span=1.0)
    assert (late.items["first_seen"] >= last_tenth).sum() >= 5
    pd.testing.assert_frame_equal(late.items.drop(columns="first_seen"), shop.items.drop(columns="first_seen"))


def test_clicks_depend_on_visual_attributes_not_in_ids(shop):
    """Per-user click rates differ by colour far more than under a shuffled colour assignment."""
    log = shop.interactions.merge(shop.items[["item_id", "colour"]], on="item_id")

    def spread(colour):
        rates = log.assign(c=colour).groupby(["user_id", "c"])["label"].agg(["mean", "size"])
        rates = rates[rates["size"] >= 3]
        return rates["mean"].std()

    shuffled = np.random.default_rng(0).permutation(log["colour"].to_numpy())
    assert spread(log["colour"].to_numpy()) > 1.3 * spread(shuffled)


def test_titles_are_built_from_attributes(shop):
    row = shop.items.iloc[0]
    assert row["category"] in row["title"] and row["brand"] in row["title"]


def test_movielens_import(movielens_dir):
    ds = read_movielens(movielens_dir)
    assert len(ds.interactions) == 100_000 and len(ds.items) == 1682 and len(ds.users) == 943
    assert abs(ds.interactions["label"].mean() - 0.554) < 0.01
    assert ds.items["image_path"].notna().sum() == 1398
    assert str(ds.interactions["event_timestamp"].dtype) == "datetime64[ns, UTC]" or \
        ds.interactions["event_timestamp"].dt.tz is not None
    assert set(ds.users["age_bucket"]) <= {"<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"}
    assert [age_bucket(a) for a in (17, 18, 24, 25, 49, 50, 55, 56)] == \
        ["<18", "18-24", "18-24", "25-34", "45-49", "50-55", "50-55", "56+"]


def test_movielens_ctr_protocol(movielens_dir):
    """The CTR benchmarks' and the lab's MovieLens protocol: sequences strictly before each event,
    split A in time order, cold items kept out of train and validation."""
    from moon_features.data.movielens_ctr import load, make_split

    mlc = load(movielens_dir, max_len=10)
    a = mlc.arrays
    assert len(a["label"]) == 100_000 and a["hist_item_id"].shape == (100_000, 10)
    assert set(f.name for f in mlc.inputs.sparse) == {"user_id", "item_id", "genre", "age", "gender", "occupation"}
    # row 0 of each user's time order has no history; a later row's history is earlier positives only
    first = np.r_[True, a["user_id"][1:] != a["user_id"][:-1]]
    assert (a["hist_len"][first] == 0).all()
    row = int(np.flatnonzero(a["hist_len"] == 10)[0])
    user, ts = a["user_id"][row], a["timestamp"][row]
    earlier = (a["user_id"] == user) & (a["timestamp"] < ts) & (a["label"] == 1)
    assert set(a["hist_item_id"][row].tolist()) <= set(a["item_id"][earlier].tolist())

    split = make_split(a, "A")
    assert a["timestamp"][split["train"]].max() <= a["timestamp"][split["test"]].min()
    cold = np.unique(a["item_id"][split["cold"]])
    assert len(cold) > 0 and not np.isin(a["item_id"][np.r_[split["train"], split["val"]]], cold).any()
