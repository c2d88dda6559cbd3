"""The encoder's colour token, whitened output and content part (#14)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moon_features.encoder.checkpoint import load_encoder
from moon_features.encoder.configuration import MoonEncoderConfig
from moon_features.encoder.errors import EncoderError, UnsupportedDimensionError
from moon_features.encoder.modeling import colour_histogram
from moon_features.encoder.output import EmbeddingOutput
from moon_features.encoder.training import train_encoder
from test_encoder import FAST, _make_dataset

FROZEN = dict(image_tower="efficientnet_lite0", image_size=32, text_tower="minilm", freeze_image_tower=True,
              freeze_text_tower=True, tower_skip=True, hidden_size=16, num_heads=2, fusion_layers=1,
              max_text_length=8, embedding_dims=[8, 16], colour_bins=2, whiten_output=True, content_dims=6,
              taste_dims=4)


def test_colour_histogram_puts_a_solid_colour_in_its_bin():
    cfg = MoonEncoderConfig(image_tower="vit", image_size=16, colour_bins=4)
    red = torch.zeros(1, 3, 16, 16)
    red[:, 0] = 0.9  # R high, G and B zero, in [0, 1]
    pixels = (red - torch.tensor(cfg.image_mean).view(1, 3, 1, 1)) / torch.tensor(cfg.image_std).view(1, 3, 1, 1)
    hist = colour_histogram(pixels, cfg)
    assert hist.shape == (1, 64)
    assert hist.sum().item() == pytest.approx(1.0)
    assert hist[0, 3 * 16 + 0 * 4 + 0].item() == pytest.approx(1.0)  # R level 3, G 0, B 0


def test_whitening_decorrelates_a_crowded_cone():
    gen = torch.Generator().manual_seed(0)
    # vectors in a narrow cone: a large shared direction plus small anisotropic noise
    z = torch.ones(500, 8) * 5 + torch.randn(500, 8, generator=gen) * torch.linspace(0.05, 1.0, 8)
    assert F.normalize(z, dim=-1).mean(0).norm() > 0.9
    out = EmbeddingOutput(8, whiten=True, content_blocks=[], content_dims=0)
    out.fit(z, None)
    w = (F.normalize(z, dim=-1) - out.whiten_mean) @ out.whiten_matrix
    assert w.mean(0).abs().max() < 1e-4
    cov = torch.cov(w.T)
    assert torch.allclose(cov - torch.diag(cov.diag()), torch.zeros(8, 8), atol=1e-4)  # decorrelated
    # unit variance, except where shrinkage holds back near-empty directions (the last ones)
    assert torch.allclose(cov.diag()[:4], torch.ones(4), atol=0.05)
    assert (cov.diag() <= 1.0 + 1e-4).all()
    served = out(z, None, dim=4)
    assert served.shape == (500, 4)
    assert F.normalize(served, dim=-1).mean(0).norm() < 0.2  # no longer one direction


def test_content_part_gives_each_tower_an_equal_share():
    gen = torch.Generator().manual_seed(1)
    content = torch.cat([torch.randn(300, 10, generator=gen) * 10, torch.randn(300, 4, generator=gen)], dim=1)
    out = EmbeddingOutput(4, whiten=False, content_blocks=[10, 4], content_dims=4)
    out.fit(torch.randn(300, 4, generator=gen), content)
    m = out.content_matrix
    assert (m[:10, 2:] == 0).all() and (m[10:, :2] == 0).all()  # block-diagonal: 2 dims per tower
    assert (m[:10, :2] != 0).any() and (m[10:, 2:] != 0).any()


def test_content_part_needs_frozen_towers():
    with pytest.raises(EncoderError, match="freeze"):
        MoonEncoderConfig(image_tower="vit", image_size=16, content_dims=4)


@pytest.fixture(scope="module")
def frozen_encoder(tmp_path_factory):
    ds = _make_dataset(tmp_path_factory.mktemp("shop"))
    out = train_encoder(ds, "demo", tmp_path_factory.mktemp("enc"), seed=0, model_overrides=FROZEN,
                        schedule_overrides=FAST, progress=False)
    return ds, out


def test_served_embedding_is_content_taste_and_whitened_trained_part(frozen_encoder):
    ds, model_dir = frozen_encoder
    model, featurizer = load_encoder(model_dir)  # the fitted buffers round-trip through the folder
    assert model.config.served_dims == [18, 26]
    assert not torch.equal(model.output.whiten_matrix, torch.eye(16))  # fitted, not the identity
    items = ds.items.sort_values("item_id")
    batch = featurizer.batch(featurizer.featurize(items, ds.root))
    z = model.embed(batch, "multimodal", 26)
    assert z.shape == (len(items), 26)
    assert torch.allclose(z.norm(dim=-1), torch.ones(len(items)), atol=1e-5)
    # content, taste and trained parts weigh the same: each is a unit vector scaled by 1/sqrt(3)
    for part in (z[:, :6], z[:, 6:10], z[:, 10:]):
        assert torch.allclose(part.norm(dim=-1), torch.full((len(items),), 3 ** -0.5), atol=1e-5)
    # the catalogue is spread out, not crowded in one direction
    assert F.normalize(z, dim=-1).mean(0).norm() < 0.5
    with pytest.raises(UnsupportedDimensionError, match=r"\[18, 26\]"):
        model.embed(batch, "multimodal", 16)


def test_reloaded_encoder_embeds_identically(frozen_encoder):
    ds, model_dir = frozen_encoder
    a, fa = load_encoder(model_dir)
    b, _ = load_encoder(model_dir)
    batch = fa.batch(fa.featurize(ds.items.sort_values("item_id"), ds.root))
    assert np.array_equal(a.embed(batch, "multimodal", 18).numpy(), b.embed(batch, "multimodal", 18).numpy())
