"""Held-out rows replayed as serving requests: how much does a model backend move test AUC?

Training-time metrics score each row in a batch of rows with their own histories; serving scores
one request: one user, B candidates, one shared history. For fp32 that is the same score. For
int8 it is not quite: onnxruntime's dynamic quantization scales each call's activations by their
range over the whole request, so a row's int8 score depends on the candidates beside it. Scoring
each row alone (B = 1) would understate int8's error. So every held-out row is scored as the
first candidate of a request of `request_size` candidates: its own user, context and history;
the other candidates are other held-out rows' items (their item-side features, drawn with a
seed). Only row 0's score is kept. The rows' point-in-time features come from the offline store,
so the comparison measures the model runtime alone, not the online lookup.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ctr_models.batch import CTRBatch
from ctr_models.data import CTRData

ScoreFn = Callable[[CTRBatch], np.ndarray]


def request_batch(data: CTRData, row: int, others: np.ndarray, user_dense=()) -> CTRBatch:
    """A shared-history request: row `row` first, then the items of rows `others`; every
    candidate gets the row's user / context fields (sparse groups other than "item", and the
    dense features named in `user_dense`) and the row's history."""
    idx = np.concatenate([[row], np.asarray(others, dtype=np.int64)])
    b = data.batch(idx)
    n = len(idx)

    def first(t: torch.Tensor) -> torch.Tensor:
        return t[:1].expand(n, *t.shape[1:]).contiguous()

    for f in data.inputs.sparse:
        if f.group != "item":
            b.sparse[f.name] = first(b.sparse[f.name])
    for name in user_dense:
        b.dense[name] = first(b.dense[name])
    b.hist = {k: first(v) for k, v in b.hist.items()}
    b.hist_len = first(b.hist_len)
    b.hist_lens = {g: first(v) for g, v in b.hist_lens.items()}
    if b.hist_emb is not None:
        b.hist_emb = first(b.hist_emb)
    b.shared_history = True
    return b


def torch_scores(model) -> ScoreFn:
    """The torch backend's call (CTRScorer.run_model): sigmoid of the logits, float32."""
    model.eval()

    def score(batch: CTRBatch) -> np.ndarray:
        with torch.inference_mode():
            return torch.sigmoid(model(batch)).numpy().astype(np.float32, copy=False)
    return score


def replay_scores(score: ScoreFn, data: CTRData, request_size: int = 200, seed: int = 0,
                  user_dense=()) -> np.ndarray:
    """float32 [N]: each row's score as the first candidate of a request of `request_size`
    candidates (fewer when `data` has fewer rows). The same seed draws the same requests, so two
    backends are compared on identical inputs."""
    n = len(data)
    rng = np.random.default_rng(seed)
    k = max(0, min(request_size, n) - 1)
    out = np.zeros(n, dtype=np.float32)
    for r in range(n):
        others = rng.choice(n - 1, size=k, replace=False) if k else np.zeros(0, np.int64)
        others = others + (others >= r)  # every row but r itself
        out[r] = score(request_batch(data, r, others, user_dense))[0]
    return out
