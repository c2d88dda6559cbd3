"""ctr_models.item_projection: DIN's per-item rows plus the per-request forward give the model's own
scores (<= 1e-5) for every DIN variant the serving graph covers, at any batch and history length."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ctr_models.config import ConfigError
from ctr_models.item_projection import ItemProjection, fingerprint
from test_onnx_export import MODELS, request, torch_scores, trained_like


def projected_scores(p: ItemProjection, f: dict) -> np.ndarray:
    b, n = len(f["item_id"]), len(f["hist_item_id"])
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in f.items()}
    emb = (lambda x: x) if p.widths["unit"] else (lambda x: None)
    cand = p.rows({"item_id": t["item_id"], "cat": t["cat"]}, {"price": t["price"]}, emb(t["item_emb"]), torch.ones(b))
    hist = p.rows({"item_id": t["hist_item_id"], "cat": t["hist_cat"]}, {"price": torch.zeros(n)},
                  emb(t["hist_emb"]), torch.ones(n))
    request_part = p.request_part({"user_id": t["user_id"][:1]}, {})
    return torch.sigmoid(p(request_part, cand, hist)).numpy()


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if n.startswith("din")])
def test_projected_rows_score_as_the_model(name):
    model = trained_like(MODELS[name]())
    p = ItemProjection(model, item_dense=("price",))
    assert p.item_fields == ["item_id", "cat"] and p.request_fields == ["user_id"]
    for n_rows, n_hist, seed in [(200, 12, 0), (7, 5, 1), (1, 1, 2), (5, 0, 3)]:
        f = request(n_rows, n_hist, seed)
        want, got = torch_scores(model, f), projected_scores(p, f)
        assert got.shape == (n_rows,)
        assert np.abs(got - want).max() <= 1e-5, (name, n_rows, n_hist)
        assert want.std() > 1e-3 or n_rows == 1


def test_fingerprint_names_the_weights_and_deepfm_is_refused():
    model = trained_like(MODELS["din"]())
    before = fingerprint(model)
    assert before == fingerprint(model) and ItemProjection(model).fingerprint == before
    with torch.no_grad():
        model.dnn[0].bias[0] += 1e-3
    assert fingerprint(model) != before
    with pytest.raises(ConfigError, match="deepfm"):
        ItemProjection(trained_like(MODELS["deepfm"]()))
