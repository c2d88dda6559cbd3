"""Ray engines on a local Ray (ray.init(num_cpus=2), started and stopped here): the embedding job on
Ray Data equals the local job's output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="needs moon-features[ray]")

# The from-scratch towers of the demo preset before it moved to frozen pretrained ones: small
# and fast; the preset's colour token and whitening still apply.
TINY = dict(image_tower="vit", text_tower="bert", freeze_image_tower=False, freeze_text_tower=False,
            content_dims=0, taste_dims=0, image_size=16, patch_size=8, hidden_size=16, num_heads=2, text_hidden_size=16, text_layers=1,
            text_heads=2, fusion_layers=1, image_layers=1, max_text_length=8, embedding_dims=[8, 16])
FAST = dict(pretrain_epochs=1, posttrain_epochs=1, batch_size=8, queue_size=16, augment_views=1,
            max_pairs_per_epoch=32)


@pytest.fixture(scope="session")
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def encoder(shop, tmp_path_factory):
    from moon_features.encoder.training import train_encoder

    out = tmp_path_factory.mktemp("ray_enc")
    return train_encoder(shop, "demo", out, seed=0, model_overrides=TINY, schedule_overrides=FAST, progress=False)


def test_ray_embed_equals_local(local_ray, shop, encoder, tmp_path):
    from moon_features.encoder.embed import embed_catalogue

    local = embed_catalogue(encoder, shop, tmp_path / "local.parquet", version=1, batch_size=16, progress=False)
    dist = embed_catalogue(encoder, shop, tmp_path / "ray.parquet", version=1, batch_size=16, progress=False,
                           engine="ray", workers=2)
    a, b = pq.read_table(tmp_path / "local.parquet").to_pandas(), pq.read_table(tmp_path / "ray.parquet").to_pandas()
    assert len(a) == len(shop.items) == dist.n_items == local.n_items
    for col in ("item_id", "event_timestamp", "encoder_version", "has_image"):
        assert a[col].tolist() == b[col].tolist(), col
    ea, eb = np.stack(a["embedding"].to_numpy()), np.stack(b["embedding"].to_numpy())
    assert ea.shape == eb.shape == (len(a), 16)
    assert np.abs(ea - eb).max() <= 1e-5
    assert np.abs(ea).max() > 0.05  # real vectors, not zeros


RAY_YAML = Path(__file__).resolve().parents[1] / "feature_repo" / "feature_store.ray.yaml"


@pytest.fixture(scope="module")
def ray_repo(local_ray, tmp_path_factory):
    """One repo, registered twice: the default (DuckDB + local engine) and feature_store.ray.yaml."""
    from fixtures.store_repo import build_repo
    from moon_features.store.repo import apply_repo

    repo, spec = build_repo(tmp_path_factory.mktemp("ray_repo"), online="sqlite", n_items=60, dim=16, max_len=10)
    project = apply_repo(repo).config.project
    (repo / "ray.yaml").write_text(RAY_YAML.read_text().replace("project: moon_features", f"project: {project}"))
    return repo, spec


def test_ray_training_set_and_materialize_equal_default(ray_repo):
    """Feast's Ray offline store floors timestamps to seconds; the sequence table is keyed on whole
    seconds (data/sequences.py), so even a log with sub-second times joins exactly as DuckDB does."""
    from moon_features.data.layout import load_dataset
    from moon_features.spec import SEQUENCE_VIEW
    from moon_features.store.repo import DATA_DIR, apply_repo, materialize_all
    from moon_features.store.sources import entity_rows, write_sources
    from moon_features.training.retrieval import training_data

    repo, spec = ray_repo
    ds = load_dataset(repo.parent / "shop")
    jitter = np.random.default_rng(0).integers(0, 1_000_000, len(ds.interactions))
    ds.interactions["event_timestamp"] += pd.to_timedelta(jitter, unit="us")  # sub-second, as real logs are
    write_sources(ds, spec, repo / DATA_DIR)
    default, on_ray = apply_repo(repo), apply_repo(repo, repo / "ray.yaml")
    rows = entity_rows(ds).sample(n=300, random_state=0)
    assert (rows["event_timestamp"] != rows["event_timestamp"].dt.floor("s")).mean() > 0.9
    a, b = training_data(default, spec, rows), training_data(on_ray, spec, rows)
    assert set(a.arrays) == set(b.arrays) and "hist_item_id" in a.arrays
    for name in a.arrays:
        assert np.array_equal(a.arrays[name], b.arrays[name]), name
    assert (a.arrays["hist_len"] > 0).mean() > 0.5  # sequences really joined
    # feast materialize: the local engine and the Ray compute engine fill equal online stores (the
    # two list-valued views; one Ray pipeline per view is what this test's time goes to).
    for store in (default, on_ray):
        materialize_all(store, [SEQUENCE_VIEW, "item_moon_embedding_v1"])
    users = [{"user_id": int(u)} for u in rows["user_id"].unique()]
    items = [{"item_id": int(i)} for i in rows["item_id"].unique()]
    for keys, refs in ((users, [f"{SEQUENCE_VIEW}:hist_item_ids", f"{SEQUENCE_VIEW}:hist_len"]),
                       (items, ["item_moon_embedding_v1:embedding"])):
        got = [s.get_online_features(features=refs, entity_rows=keys).to_dict() for s in (default, on_ray)]
        assert got[0] == got[1]
        assert sum(v is not None for v in got[0][refs[0].split(":")[1]]) > len(keys) // 2


def test_ray_train_ddp_equals_single_process(ray_repo, tmp_path):
    """TorchTrainer with 2 DDP workers makes the single-process Trainer's updates (training/ray_train.py):
    same weights, predictions and epochs up to float summation order. The last batch has one row,
    so one worker trains on nothing in that step and the Dice norms fall back to running statistics."""
    from ctr_models.artifact import from_pretrained
    from ctr_models.trainer import Trainer, TrainerConfig
    from fixtures.serving_setup import TINY_DIN
    from moon_features.data.layout import load_dataset
    from moon_features.store.repo import apply_repo
    from moon_features.store.sources import entity_rows
    from moon_features.training.retrieval import training_data
    from moon_features.training.train import time_split, train_from_feast

    repo, spec = ray_repo
    store, tmp = apply_repo(repo), tmp_path
    rows = entity_rows(load_dataset(repo.parent / "shop")).sort_values("event_timestamp", kind="stable")
    batch = 64
    n = next(n for n in range(len(rows), 0, -1) if len(time_split(rows.iloc[:n])[0]) % batch == 1)
    rows = rows.iloc[:n]
    reports = {}
    for engine in ("local", "ray"):
        cfg = TrainerConfig(epochs=2, batch_size=batch, progress=False, seed=0)
        reports[engine] = train_from_feast(repo, rows, tmp / engine, model="din", trainer_config=cfg,
                                           model_overrides=TINY_DIN, engine=engine, workers=2)
    local, dist = reports["local"], reports["ray"]
    print(f"\nsingle-process test AUC {local.test['auc']:.6f}, Ray Train 2 workers {dist.test['auc']:.6f}")
    assert abs(dist.test["auc"] - local.test["auc"]) < 1e-4
    assert dist.best_epoch == local.best_epoch
    for a, b in zip(dist.history, local.history):
        assert abs(a["val_auc"] - b["val_auc"]) < 1e-4 and abs(a["val_logloss"] - b["val_logloss"]) < 1e-5
    art, ref = from_pretrained(tmp / "ray"), from_pretrained(tmp / "local")  # normal, loadable artifacts
    assert art.extra["feature_spec"] == ref.extra["feature_spec"]
    a, b = art.model.state_dict(), ref.model.state_dict()
    assert a.keys() == b.keys()
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a) < 1e-4  # Dice's running stats too
    test = training_data(store, spec, time_split(rows)[2])
    p, q = (Trainer(TrainerConfig(progress=False)).predict(m.model, test) for m in (art, ref))
    assert np.abs(p - q).max() < 1e-5 and p.std() > 1e-3  # real, varied scores
