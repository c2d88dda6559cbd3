"""Ray engines on a local Ray (ray.init(num_cpus=2), started and stopped here): the embedding job on
Ray Data equals the local job's output."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="needs moon-features[ray]")

TINY = dict(image_size=16, patch_size=8, hidden_size=16, num_heads=2, text_hidden_size=16, text_layers=1,
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
