"""The Keras models read a context field (a sparse field of group 'context', what
`features build --context-columns` adds) as the PyTorch ones do: same weights, same logits, and
the context value moves the logit."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytestmark = pytest.mark.tf
ctf = pytest.importorskip("ctr_models.tf", exc_type=ImportError)
ctf.configure_threads(1)

import torch  # noqa: E402

from ctr_models import CTRData, DeepFM, DeepFMConfig, DIN, DINConfig  # noqa: E402
from ctr_models.inputs import SparseField  # noqa: E402
from fixtures.ctr_data import synthetic_ctr_arrays, tiny_inputs  # noqa: E402

CASES = [("din", DIN, ctf.DIN, DINConfig(embed_dim=8)), ("deepfm", DeepFM, ctf.DeepFM, DeepFMConfig(embed_dim=8))]


@pytest.mark.parametrize("name,torch_cls,tf_cls,config", CASES, ids=[c[0] for c in CASES])
def test_a_context_field_gives_the_same_logits_in_torch_and_tf(name, torch_cls, tf_cls, config):
    base = tiny_inputs()
    inputs = replace(base, sparse=base.sparse + (SparseField("device", 4, "context"),))
    arrays, _ = synthetic_ctr_arrays(base, 200, seed=1)
    arrays["device"] = np.random.default_rng(2).integers(0, 4, 200)
    data = CTRData(arrays, inputs)
    torch.manual_seed(0)
    tm = torch_cls(config, inputs)
    with torch.no_grad():  # move every weight off its init so the comparison covers them all
        for p in tm.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for m in tm.modules():  # ... but the padding rows: id 0 (unknown context) reads zeros, as in training
            if isinstance(m, torch.nn.Embedding):
                m.weight[0].zero_()
    tm.eval()
    km = tf_cls(config, inputs)
    ds = ctf.TFCTRDataset(data)
    km(next(iter(ds.dataset(8))), training=False)
    km.load_torch(tm)
    batch = data.batch(slice(0, 128))
    with torch.no_grad():
        expected = tm(batch).numpy()
        other = batch.sparse["device"]
        batch.sparse["device"] = (other + 1) % 4
        moved = tm(batch).numpy()
    np.testing.assert_allclose(km(next(iter(ds.dataset(128))), training=False).numpy(), expected,
                               rtol=1e-4, atol=1e-5)
    assert np.abs(moved - expected).max() > 1e-3  # the context field reaches the logit
