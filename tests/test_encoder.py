"""Tests of the MOON item encoder on a tiny catalogue built here (PIL-drawn images).

Real models, real training steps; sizes are cut so the whole file runs in well under a minute.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from moon_features.data.layout import Dataset, DatasetMeta, save_dataset  # noqa: E402
from moon_features.encoder import (CheckpointMismatchError, EmbeddingNaNError, MoonEncoderConfig,  # noqa: E402
                                   MoonItemEncoder, UnsupportedDimensionError, embedding_view_name)
from moon_features.encoder.checkpoint import load_encoder  # noqa: E402
from moon_features.encoder.embed import embed_catalogue  # noqa: E402
from moon_features.encoder.evaluate import evaluate_encoder, paired_recall_difference, recall_at_k  # noqa: E402
from moon_features.encoder.losses import _info_nce  # noqa: E402
from moon_features.encoder.pairs import co_engagement_pairs, heldout_pairs, split_by_time  # noqa: E402
from moon_features.encoder.training import train_encoder  # noqa: E402

torch.set_num_threads(1)
COLOURS = ["red", "blue", "green", "orange"]
CATEGORIES = ["shoe", "hat", "bag"]
# The from-scratch towers of the demo preset before it moved to frozen pretrained ones: small
# and fast; the preset's colour token and whitening still apply.
TINY = dict(image_tower="vit", text_tower="bert", freeze_image_tower=False, freeze_text_tower=False,
            content_dims=0, taste_dims=0, image_size=16, patch_size=8, hidden_size=16, num_heads=2, text_hidden_size=16, text_layers=1,
            text_heads=2, fusion_layers=1, image_layers=1, max_text_length=8, embedding_dims=[8, 16])
FAST = dict(pretrain_epochs=1, posttrain_epochs=1, batch_size=8, queue_size=16, augment_views=1,
            max_pairs_per_epoch=32)
N_ITEMS = 24
NO_IMAGE, CORRUPT = 23, 24


def _make_dataset(root) -> Dataset:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(1, N_ITEMS + 1):
        colour, cat = COLOURS[i % 4], CATEGORIES[i % 3]
        path = f"images/{i}.png"
        if i == NO_IMAGE:
            path = None
        elif i == CORRUPT:
            (root / path).write_bytes(b"this is not a png")
        else:
            im = Image.new("RGB", (40, 40), "white")
            ImageDraw.Draw(im).ellipse((5, 5, 35, 35) if cat == "hat" else (5, 5, 35, 35 - i % 10), fill=colour)
            im.save(root / path)
        rows.append({"item_id": i, "title": f"{colour} {cat} model {i}", "image_path": path,
                     "first_seen": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=i), "category": cat})
    items = pd.DataFrame(rows)
    # users like one colour: consecutive positives pair items of that colour
    inter = []
    t0 = pd.Timestamp("2024-02-01", tz="UTC")
    for u in range(1, 13):
        liked = [i for i in range(1, N_ITEMS + 1) if i % 4 == u % 4]
        for k, i in enumerate(rng.permutation(liked)):
            inter.append({"user_id": u, "item_id": int(i), "event_timestamp": t0 + pd.Timedelta(hours=u * 24 + k),
                          "label": 1})
    ds = Dataset(root=root, meta=DatasetMeta(name="tiny-shop", item_categorical=["category"]), items=items,
                 users=pd.DataFrame({"user_id": range(1, 13)}), interactions=pd.DataFrame(inter))
    save_dataset(ds)
    return ds


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _make_dataset(tmp_path_factory.mktemp("tiny_shop"))


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc")
    return train_encoder(dataset, "demo", out, seed=3, model_overrides=TINY, schedule_overrides=FAST, progress=False)


def _tiny_config(**kw) -> MoonEncoderConfig:
    return MoonEncoderConfig(**{**TINY, **kw}, attribute_vocab={"category": CATEGORIES})


def test_model_roundtrips_and_serves_every_matryoshka_dim(tmp_path, dataset):
    from transformers import AutoModel

    model = MoonItemEncoder(_tiny_config()).eval()
    _, featurizer = None, None
    from moon_features.encoder.data import ItemFeaturizer

    featurizer = ItemFeaturizer(model.config, ItemFeaturizer.default_tokenizer(model.config))
    batch = featurizer.batch(featurizer.featurize(dataset.items, dataset.root))
    model.save_pretrained(tmp_path)
    again = AutoModel.from_pretrained(tmp_path).eval()
    assert type(again) is MoonItemEncoder
    for mode in ("multimodal", "image", "text"):
        for dim in (8, 16):
            a, b = model.embed(batch, mode, dim), again.embed(batch, mode, dim)
            assert a.shape == (N_ITEMS, dim)
            torch.testing.assert_close(a, b)
            torch.testing.assert_close(a.norm(dim=-1), torch.ones(N_ITEMS))
    # the image-only embedding ignores the title; the multimodal one does not
    other = featurizer.batch(featurizer.featurize(dataset.items.assign(title="something else"), dataset.root))
    torch.testing.assert_close(model.embed(other, "image"), model.embed(batch, "image"))
    assert not torch.allclose(model.embed(other), model.embed(batch))
    with pytest.raises(UnsupportedDimensionError, match="8, 16"):
        model.embed(batch, dim=12)


def test_tower_skip_and_padding_do_not_change_an_items_embedding(dataset):
    from moon_features.encoder.data import ItemFeaturizer

    model = MoonItemEncoder(_tiny_config(tower_skip=True, text_columns=["title", "category"])).eval()
    featurizer = ItemFeaturizer(model.config, ItemFeaturizer.default_tokenizer(model.config))
    assert featurizer.texts(dataset.items.head(1)) == [f"{dataset.items.title[0]}. {dataset.items.category[0]}"]
    feats = featurizer.featurize(dataset.items, dataset.root)
    whole = model.embed(featurizer.batch(feats))
    # one item at a time: no padding from longer titles in the batch; the result must not change
    alone = torch.cat([model.embed(featurizer.batch(feats, [r])) for r in range(N_ITEMS)])
    torch.testing.assert_close(whole, alone, atol=1e-5, rtol=1e-4)
    # the skip carries the towers' pooled outputs: the image-only embedding still ignores the title
    other = featurizer.featurize(dataset.items.assign(title="something else"), dataset.root)
    torch.testing.assert_close(model.embed(featurizer.batch(other), "image"), model.embed(featurizer.batch(feats), "image"))


def test_logq_correction_shifts_logits_by_sampling_frequency():
    from moon_features.encoder.training import positive_log_frequency

    q = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    logq = torch.tensor([1.0, -0.5, 0.0])
    got = _info_nce(q, k, 10.0, torch.tensor([7, 8, 9]), torch.tensor([1, 2, 3]), key_logq=logq)
    expected = torch.nn.functional.cross_entropy(10.0 * q @ k.T - logq[None, :], torch.arange(3))
    torch.testing.assert_close(got, expected)
    # row 0 is the positive of 3 of 4 pairs: sampled 3x more often than uniform (with +1 smoothing)
    lf = positive_log_frequency(np.array([[1, 0], [2, 0], [3, 0], [0, 1]]), 4)
    assert lf[0] > 0 > lf[2] and torch.isclose(lf[2], lf[3])


def test_efficientnet_lite0_loads_imagenet_weights():
    from moon_features.encoder.efficientnet_lite import EfficientNetLite0, load_imagenet_weights

    net = load_imagenet_weights(EfficientNetLite0()).eval()
    with torch.no_grad():
        fmap = net(torch.zeros(1, 3, 64, 64))
    assert fmap.shape == (1, 1280, 2, 2) and torch.isfinite(fmap).all()


def test_info_nce_masks_false_negatives():
    q = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    k = q.clone()
    ids = torch.tensor([1, 2, 1])  # rows 0 and 2 are the same item: not each other's negative
    masked = _info_nce(q, k, 10.0, torch.tensor([7, 8, 9]), ids)
    logits = 10.0 * q @ k.T
    logits[0, 2] = logits[2, 0] = float("-inf")
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(3))
    torch.testing.assert_close(masked, expected)


def test_co_engagement_pairs_respect_window_and_gap():
    t = pd.Timestamp("2024-01-01", tz="UTC")
    log = pd.DataFrame({"user_id": [1, 1, 1, 1, 2], "item_id": [10, 11, 12, 13, 10],
                        "event_timestamp": [t, t + pd.Timedelta(minutes=1), t + pd.Timedelta(minutes=2),
                                            t + pd.Timedelta(days=3), t],
                        "label": [1, 1, 0, 1, 1]})
    pairs = co_engagement_pairs(log, [10, 11, 12, 13], window=2, max_gap_s=3600)
    assert sorted(zip(pairs.item_a, pairs.item_b)) == [(10, 11)]  # 12 is negative, 13 is days later


def test_training_is_deterministic_and_resumes_exactly(dataset, trained, tmp_path):
    out = tmp_path / "interrupted"
    ckpt = train_encoder(dataset, "demo", out, seed=3, model_overrides=TINY, schedule_overrides=FAST,
                         progress=False, stop_after_epoch=1)
    assert (ckpt / "trainer_state.pt").exists() and not (out / "model").exists()
    resumed = train_encoder(dataset, "demo", out, seed=3, model_overrides=TINY, schedule_overrides=FAST, progress=False)
    a, _ = load_encoder(trained)
    b, _ = load_encoder(resumed)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)
    summary = json.loads((resumed / "training.json").read_text())
    assert [h["stage"] for h in summary["history"]] == [1, 2]
    assert json.loads((trained / "training.json").read_text())["resumed_after_epoch"] is None
    assert summary["resumed_after_epoch"] == 1  # so train_seconds (this call only) is not read as the whole
    assert summary["epoch_seconds"] == pytest.approx(sum(h["seconds"] for h in summary["history"]), abs=0.1)
    assert summary["bad_images"] == {str(CORRUPT): summary["bad_images"][str(CORRUPT)]}


def test_resuming_with_another_config_is_a_clear_error(dataset, trained):
    with pytest.raises(CheckpointMismatchError, match="hidden_size"):
        train_encoder(dataset, "demo", trained.parent, seed=3, model_overrides={**TINY, "hidden_size": 32},
                      schedule_overrides=FAST, progress=False)


def test_loading_weights_of_another_config_is_a_clear_error(trained, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(trained, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["hidden_size"], cfg["num_heads"] = 32, 2
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointMismatchError, match="different encoder"):
        load_encoder(bad)


def test_embed_job_writes_the_feature_view_source(dataset, trained, tmp_path):
    out = tmp_path / f"{embedding_view_name(2)}.parquet"
    rep = embed_catalogue(trained, dataset, out, version=2, dim=8, batch_size=5, progress=False)
    table = pq.read_table(out)
    assert str(table.schema.field("embedding").type) == "list<element: float>"
    assert str(table.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    df = table.to_pandas()
    assert df["item_id"].tolist() == list(range(1, N_ITEMS + 1))
    assert (df["event_timestamp"] == dataset.items["first_seen"]).all()
    assert set(df.loc[~df["has_image"], "item_id"]) == {NO_IMAGE, CORRUPT}
    assert CORRUPT in rep.bad_images and rep.n_text_only == 2 and rep.items_per_s > 0
    emb = np.stack(df["embedding"].to_numpy())
    assert emb.shape == (N_ITEMS, 8) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert (df["encoder_version"] == "v2").all() and rep.view_name == "item_moon_embedding_v2"
    with pytest.raises(UnsupportedDimensionError):
        embed_catalogue(trained, dataset, tmp_path / "x.parquet", version=2, dim=10, progress=False)
    assert not (tmp_path / "x.parquet").exists()


def test_nan_embedding_fails_before_anything_is_written(dataset, trained, tmp_path):
    model, featurizer = load_encoder(trained)
    with torch.no_grad():
        model.attribute_embedding.weight[1:].fill_(float("nan"))  # every category token -> NaN
    broken = tmp_path / "broken"
    model.save_pretrained(broken)
    featurizer.tokenizer.save_pretrained(broken)
    out = tmp_path / "emb.parquet"
    with pytest.raises(EmbeddingNaNError) as err:
        embed_catalogue(broken, dataset, out, version=1, batch_size=5, progress=False)
    assert err.value.item_ids == list(range(1, N_ITEMS + 1)) and "item_id 1, 2" in str(err.value)
    assert not out.exists() and not list(tmp_path.glob("emb.parquet*"))


def test_recall_and_evaluation_against_baselines(dataset, trained):
    g = torch.eye(4)
    assert recall_at_k(g[[0, 1]], g, np.array([0, 3]), (1,), exclude=None) == {1: 0.5}
    train_log, test_log = split_by_time(dataset.interactions, 0.3)
    pairs = heldout_pairs(train_log, test_log, dataset.items["item_id"], max_pairs=50)
    res = evaluate_encoder(trained, dataset, pairs, ks=(1, 10), seed=0, baseline_image_size=32, progress=False)
    assert set(res["methods"]) == {"moon_encoder", "random_init_encoder", "minilm_title",
                                   "efficientnet_lite0_imagenet"}
    for r in res["methods"].values():
        assert 0.0 <= r["recall@1"] <= r["recall@10"] <= 1.0
    # pairs whose item A has no readable image are not image queries
    assert res["n_pairs"] == sum(a not in (NO_IMAGE, CORRUPT) for a in pairs["item_a"])
    # each method against the encoder, query by query, agrees with the two recalls
    for name, cmp in res["paired_vs_encoder"].items():
        diff = res["methods"]["moon_encoder"]["recall@10"] - res["methods"][name]["recall@10"]
        assert cmp["difference"] == pytest.approx(diff)
        assert cmp["ci95"][0] <= cmp["difference"] <= cmp["ci95"][1]


def test_paired_recall_difference_interval():
    rng = np.random.default_rng(0)
    better = rng.integers(0, 8, 4000)               # rank < 10 always: recall 1.0
    worse = np.where(rng.random(4000) < 0.9, 3, 50)  # recall about 0.9
    cmp = paired_recall_difference(better, worse, k=10)
    assert cmp["difference"] == pytest.approx(float((worse >= 10).mean()))
    assert 0.08 < cmp["ci95"][0] < cmp["difference"] < cmp["ci95"][1] < 0.12
    assert cmp["b_only"] == 0 and cmp["a_only"] == int((worse >= 10).sum())
    same = paired_recall_difference(worse, worse, k=10)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0]


def test_cli_reports_unsupported_dimension(dataset, trained, tmp_path, capsys):
    from moon_features.encoder.cli import main

    code = main(["encoder", "embed", "--data", str(dataset.root), "--model", str(trained), "--out",
                 str(tmp_path), "--dim", "12", "--quiet"])
    assert code == 2 and "not served by this encoder" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.parquet"))
