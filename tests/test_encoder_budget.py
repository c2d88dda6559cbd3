"""Issue #19's encoder items on a tiny synthetic shop (real frozen towers, seconds per run):
the on-disk tower store, `--before`, text columns chosen from the dataset, safe threads, and
same-group recall from a groups / pairs file."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from moon_features.data.layout import load_dataset, save_dataset  # noqa: E402
from moon_features.data.split import training_period_end  # noqa: E402
from moon_features.data.shop_variants import purchase_only, sparse_ids  # noqa: E402
from moon_features.data.synthetic import generate_shop  # noqa: E402
from moon_features.encoder.checkpoint import load_encoder  # noqa: E402
from moon_features.encoder.cli import main as encoder_cli  # noqa: E402
from moon_features.encoder.columns import UnknownTextColumnError, choose_text_columns  # noqa: E402
from moon_features.encoder.cut import resolve_before  # noqa: E402
from moon_features.encoder.embed import embed_catalogue  # noqa: E402
from moon_features.encoder.errors import EncoderError  # noqa: E402
from moon_features.encoder.pairs import co_engagement_pairs, symmetric  # noqa: E402
from moon_features.encoder.runtime import safe_thread_count  # noqa: E402
from moon_features.encoder.training import train_encoder  # noqa: E402
from moon_features.idmap import coded_dataset  # noqa: E402
from moon_features.store.sources import entity_rows  # noqa: E402
from moon_features.training.train import time_split  # noqa: E402

FAST = dict(pretrain_epochs=1, posttrain_epochs=1, batch_size=8, queue_size=16, augment_views=1,
            max_pairs_per_epoch=32, num_threads=1)
SMALL_FUSION = dict(hidden_size=32, num_heads=2, embedding_dims=[8, 16], content_dims=8)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """40 items (some are other colours of an earlier product), purchase-only, sparse ids."""
    root = tmp_path_factory.mktemp("shop")
    ds = sparse_ids(purchase_only(generate_shop(root, n_items=40, seed=0, progress=False)))
    save_dataset(ds, root)
    return ds


def _train(ds, out, store, **kw):
    return train_encoder(ds, "demo", out, seed=1, model_overrides=SMALL_FUSION, schedule_overrides=FAST,
                         progress=False, tower_store=store, **kw)


def _summary(model_dir) -> dict:
    return json.loads((model_dir / "training.json").read_text())


def test_tower_store_is_reused_and_a_changed_image_invalidates_its_entry(shop, tmp_path):
    store = tmp_path / "store"
    first = _train(shop, tmp_path / "a", store)
    n_titles = shop.items["title"].nunique()  # items with the same text share one text-tower run
    assert _summary(first)["image_items_computed"] == 40 and _summary(first)["text_items_computed"] == n_titles
    second = _train(shop, tmp_path / "b", store)
    assert _summary(second)["image_items_computed"] == 0 and _summary(second)["text_items_computed"] == 0
    a, _ = load_encoder(first)
    b, _ = load_encoder(second)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):  # the stored outputs are the same
        torch.testing.assert_close(p, q, msg=name)

    # the embedding job reads the same store; its vectors match the job that runs the towers itself
    direct = embed_catalogue(first, shop, tmp_path / "direct.parquet", 1, progress=False)
    stored = embed_catalogue(first, shop, tmp_path / "stored.parquet", 1, progress=False, tower_store=store)
    e1, e2 = (np.stack(pd.read_parquet(r.path)["embedding"].to_numpy()) for r in (direct, stored))
    np.testing.assert_allclose(e1, e2, atol=2e-2)  # the store keeps float16 tower outputs

    path = shop.root / shop.items["image_path"].iloc[0]
    Image.new("RGB", Image.open(path).size, "black").save(path)  # a changed image: only its entry goes
    third = _train(shop, tmp_path / "c", store)
    assert _summary(third)["image_items_computed"] == 1 and _summary(third)["text_items_computed"] == 0


def test_before_trains_on_earlier_interactions_and_their_pairs_only(shop, tmp_path):
    ts = pd.to_datetime(shop.interactions["event_timestamp"], utc=True)
    cut = ts.quantile(0.6)
    model = _train(shop, tmp_path / "before", tmp_path / "store", before=str(cut))
    s = _summary(model)
    early = shop.interactions[ts < cut]
    assert s["interactions"] == len(early) < len(shop.interactions)
    expected = symmetric(co_engagement_pairs(early, shop.items["item_id"], 3, 86400.0))
    assert s["co_engagement_pairs"] == len(expected)
    with pytest.raises(EncoderError, match="later --before"):
        _train(shop, tmp_path / "too_early", tmp_path / "store", before="2000-01-01")
    with pytest.raises(EncoderError, match="not a date"):
        _train(shop, tmp_path / "bad", tmp_path / "store", before="last tuesday")


def test_before_a_rows_file_cuts_where_train_rows_splits_it(shop, tmp_path, capsys):
    """With `train --rows FILE` the split is of that file's rows: `--before FILE` cuts there (not
    where --data's log would be cut); a missing file or a non-date names the three accepted forms."""
    rows = shop.interactions.iloc[: int(len(shop.interactions) * 0.6)]
    rows.to_parquet(tmp_path / "rows.parquet")
    cut = resolve_before(shop, str(tmp_path / "rows.parquet"))
    assert cut == time_split(rows)[0]["event_timestamp"].max() == training_period_end(rows)
    assert cut < resolve_before(shop, "auto")
    assert f"{cut.isoformat()} (the last timestamp of `train --rows" in capsys.readouterr().out
    with pytest.raises(EncoderError, match="no such file; use a date .* 'auto' .* `train --rows`"):
        resolve_before(shop, str(tmp_path / "missing.parquet"))
    assert resolve_before(shop, "2026-01-20") == "2026-01-20"


def test_before_auto_cuts_where_trains_training_split_ends(shop, tmp_path, capsys):
    """`--before auto` = the last timestamp of the training split `moon-features train --data`
    makes (its entity rows: the coded log, training/commands.py); the encoder then reads only the
    interactions strictly before it, co-engagement pairs included, and prints the date."""
    coded = coded_dataset(load_dataset(shop.root))[0]
    train_rows, val_rows, _ = time_split(entity_rows(coded))
    end = train_rows["event_timestamp"].max()
    assert training_period_end(shop.interactions) == training_period_end(coded.interactions) == end
    assert end <= val_rows["event_timestamp"].min()
    code = encoder_cli(["encoder", "train", "--data", str(shop.root), "--out", str(tmp_path / "auto"), "--quiet",
                        "--before", "auto", "--augment-views", "0", "--pretrain-epochs", "1", "--posttrain-epochs",
                        "1", "--threads", "1", "--cache-dir", str(tmp_path / "store")])
    assert code == 0 and f"--before auto: {end.isoformat()}" in capsys.readouterr().out
    s = _summary(tmp_path / "auto" / "model")
    ts = pd.to_datetime(coded.interactions["event_timestamp"], utc=True)
    read = coded.interactions[ts < end]
    assert s["before"] == str(end) and s["interactions"] == len(read)
    assert 0 < len(read) < len(train_rows) < len(coded.interactions)  # no validation or test row, none at `end`
    expected = symmetric(co_engagement_pairs(read, coded.items["item_id"], 3, 86400.0))
    assert s["co_engagement_pairs"] == len(expected)


def test_text_columns_come_from_the_dataset(shop, tmp_path, capsys):
    assert choose_text_columns(shop, "auto") == ["title", "category", "brand"]
    assert choose_text_columns(shop, ["title", "colour"]) == ["title", "colour"]
    with pytest.raises(UnknownTextColumnError, match="'pattern'"):
        choose_text_columns(shop, ["title", "genres"])
    code = encoder_cli(["encoder", "train", "--data", str(shop.root), "--out", str(tmp_path / "x"),
                        "--text-columns", "title,genres", "--no-tower-cache", "--quiet"])
    assert code == 2 and "genres" in capsys.readouterr().err
    code = encoder_cli(["encoder", "train", "--data", str(shop.root), "--out", str(tmp_path / "y"), "--quiet",
                        "--text-columns", "title,colour", "--augment-views", "0", "--pretrain-epochs", "1",
                        "--posttrain-epochs", "0", "--threads", "1", "--cache-dir", str(tmp_path / "store")])
    summary = _summary(tmp_path / "y" / "model")
    assert code == 0 and summary["text_columns"] == ["title", "colour"]
    assert summary["schedule"]["augment_views"] == 0 and summary["threads"] == 1


def test_default_threads_do_not_oversubscribe_a_busy_machine():
    assert safe_thread_count(cores=2, load=1.6) == 1
    assert safe_thread_count(cores=2, load=0.1) == 1  # int(1.9): a core already half busy is not idle
    assert safe_thread_count(cores=2, load=0.0) == 2
    assert safe_thread_count(cores=16, load=0.0) == 4
    assert safe_thread_count(cores=2, load=9.0) == 1


def test_same_group_recall_from_groups_and_pairs_files(shop, tmp_path, capsys):
    model = _train(shop, tmp_path / "enc", tmp_path / "store")
    groups = shop.items[["item_id", "product_id"]]
    groups.to_csv(tmp_path / "groups.csv", index=False)
    args = ["encoder", "evaluate", "--data", str(shop.root), "--model", str(model), "--cache-dir",
            str(tmp_path / "store"), "--quiet", "--threads", "1"]
    assert encoder_cli(args + ["--groups", str(tmp_path / "groups.csv"), "--out", str(tmp_path / "g")]) == 0
    by_groups = json.loads((tmp_path / "g" / "encoder_groups_recall.json").read_text())
    assert set(by_groups["methods"]) == {"moon_encoder", "image_tower", "text_tower", "random"}
    n_variants = int((groups.groupby("product_id").size() > 1).sum())
    assert n_variants > 0 and by_groups["n_queries"] >= 2 * n_variants
    for r in by_groups["methods"].values():
        assert 0.0 <= r["recall@1"] <= r["recall@10"] <= r["recall@50"] == 1.0  # 50 > the whole gallery

    # the same ground truth as pairs (every two items of a product) gives the same figures
    pairs = groups.merge(groups, on="product_id").query("item_id_x < item_id_y")[["item_id_x", "item_id_y"]]
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    assert encoder_cli(args + ["--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "p")]) == 0
    by_pairs = json.loads((tmp_path / "p" / "encoder_pairs_recall.json").read_text())
    assert by_pairs["methods"] == by_groups["methods"]

    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"item_id": [groups["item_id"].iloc[0], 123], "group_id": [1, 1]}).to_csv(bad, index=False)
    assert encoder_cli(args + ["--groups", str(bad)]) == 2
    assert "not in the catalogue" in capsys.readouterr().err
    pd.DataFrame({"a": [1], "b": [2], "c": [3]}).to_csv(bad, index=False)
    assert encoder_cli(args + ["--groups", str(bad)]) == 2
    assert "exactly two columns" in capsys.readouterr().err
