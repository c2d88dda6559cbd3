"""Intermediate (embedding-only) metrics of one encoder variant, and its item-embedding table.

All on one `MetricContext` built once per lab run: the catalogue decoded once, one augmented
view per image (seeded as `evaluate_encoder` does, distinct from training), and frozen-tower
outputs cached once (every encoder of a lab shares its preset's frozen towers; checked).

* image_search@K: image-only embedding of item A vs multimodal embeddings of the catalogue
  (A excluded), hit when the co-engaged item B is in the top K (held-out test-period pairs).
  Same definition, pairs and code (`recall_at_k`) as `evaluate_encoder`'s recall@K.
* text_search@K: the same with the text-only (title + attributes) embedding of A as the query.
* near_duplicate@K: an augmented copy of an item's image must retrieve the item itself.
* alignment_loss: symmetric image<->title InfoNCE (the stage-1 loss) over the catalogue in fixed
  chunks of 256 items at a fixed temperature 0.05, so it is comparable across checkpoints.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..encoder.cache import CatalogueCache
from ..encoder.checkpoint import load_encoder
from ..encoder.data import augmented_views, featurize_in_chunks
from ..encoder.evaluate import EVAL_AUGMENT_OFFSET, image_query_rows, recall_at_k
from ..encoder.losses import alignment_loss
from .presets import LabError

ALIGNMENT_TEMPERATURE = 0.05
ALIGNMENT_CHUNK = 256

# metric name -> (pretty name, +1 if higher is better, -1 if lower is better)
METRIC_INFO = {
    "image_search": ("image-search recall", +1),
    "text_search": ("text-to-item recall", +1),
    "near_duplicate": ("near-duplicate recall", +1),
    "alignment_loss": ("image-text alignment loss", -1),
}


def _frozen_fingerprint(model) -> tuple:
    """Sums of the frozen towers' weights: caches of tower outputs are valid only for equal towers."""
    cfg = model.config
    out = []
    for flag, prefix in ((cfg.freeze_image_tower, "image_tower."), (cfg.freeze_text_tower, "text_tower.")):
        if flag:
            out.append(round(float(sum(p.double().sum() for n, p in model.named_parameters()
                                       if n.startswith(prefix))), 4))
    return tuple(out)


@dataclass
class MetricContext:
    cache: CatalogueCache
    item_ids: np.ndarray           # catalogue row -> item id
    a_rows: np.ndarray             # held-out pairs (rows), A has a readable image
    b_rows: np.ndarray
    dup_rows: np.ndarray           # rows with an image (near-duplicate queries)
    align_rows: np.ndarray
    signature: dict
    fingerprint: tuple
    n_pairs: int
    seconds: float

    @classmethod
    def build(cls, model_dir, dataset, pairs: pd.DataFrame, seed: int = 0, progress: bool = True) -> "MetricContext":
        t0 = time.perf_counter()
        model, featurizer = load_encoder(model_dir)
        items = dataset.items.sort_values("item_id").reset_index(drop=True)
        feats = featurize_in_chunks(featurizer, items, dataset.root, progress=progress)
        aug = augmented_views(items, dataset.root, feats, model.config.image_size, 1, seed + EVAL_AUGMENT_OFFSET,
                              progress)
        cache = CatalogueCache(model, featurizer, feats, aug, progress=progress)
        has_image = feats.has_image.numpy()
        a_rows, b_rows = image_query_rows(pairs, feats.item_ids, has_image)
        if len(a_rows) == 0:
            raise LabError("no held-out co-engagement pair has an item A with a readable image: the recall metrics "
                           "need image queries (more test-period interactions, or a wider pair window)")
        dup_rows = np.flatnonzero(has_image)
        return cls(cache, np.asarray(feats.item_ids), a_rows, b_rows, dup_rows, dup_rows,
                   model.config.architecture_signature(), _frozen_fingerprint(model), len(a_rows),
                   time.perf_counter() - t0)

    def check(self, model, where) -> None:
        if model.config.architecture_signature() != self.signature or _frozen_fingerprint(model) != self.fingerprint:
            raise LabError(f"encoder {where} has another architecture or other frozen towers than the lab's first "
                           "encoder; one lab run compares encoders of one preset")


@torch.no_grad()
def _alignment_loss(z_image: torch.Tensor, z_text: torch.Tensor, ids: torch.Tensor) -> float:
    scale = torch.tensor(math.log(1.0 / ALIGNMENT_TEMPERATURE))
    losses, weights = [], []
    for s in range(0, len(z_image), ALIGNMENT_CHUNK):
        n = len(z_image[s: s + ALIGNMENT_CHUNK])
        if n < 2:
            continue
        losses.append(float(alignment_loss(z_image[s: s + n], z_text[s: s + n], ids[s: s + n], scale,
                                           [z_image.shape[1]])))
        weights.append(n)
    return float(np.average(losses, weights=weights)) if losses else float("nan")


def intermediate_metrics(ctx: MetricContext, model_dir, dim: int | None, ks=(1, 10, 50),
                         n_rows: int | None = None) -> tuple[dict, np.ndarray | None]:
    """(metrics, embedding table) of the encoder in `model_dir` at `dim`. The table is
    [n_rows, dim] float32 indexed by item id (row 0 and unknown items = zeros), ready for CTRData."""
    model, _ = load_encoder(model_dir)
    ctx.check(model, model_dir)
    dim = model.config.check_dim(dim)
    c = ctx.cache
    g = c.embed_all(model, "multimodal", dim)
    q_img = c.embed_all(model, "image", dim)
    q_txt = c.embed_all(model, "text", dim)
    q_dup = c.embed_all(model, "image", dim, view=1, rows=ctx.dup_rows)
    m = {"dim": dim, "n_pairs": ctx.n_pairs}
    for k, v in recall_at_k(q_img[ctx.a_rows], g, ctx.b_rows, ks, exclude=ctx.a_rows).items():
        m[f"image_search@{k}"] = v
    for k, v in recall_at_k(q_txt[ctx.a_rows], g, ctx.b_rows, ks, exclude=ctx.a_rows).items():
        m[f"text_search@{k}"] = v
    for k, v in recall_at_k(q_dup, g, ctx.dup_rows, ks).items():
        m[f"near_duplicate@{k}"] = v
    ids = torch.as_tensor(ctx.item_ids[ctx.align_rows])
    m["alignment_loss"] = _alignment_loss(q_img[ctx.align_rows], q_txt[ctx.align_rows], ids)
    table = None
    if n_rows is not None:
        emb = g.numpy().astype(np.float32)
        if not np.isfinite(emb).all():
            raise LabError(f"encoder {model_dir} produced NaN / inf embeddings at dim {dim}")
        table = np.zeros((n_rows, dim), np.float32)
        keep = (ctx.item_ids > 0) & (ctx.item_ids < n_rows)
        table[ctx.item_ids[keep]] = emb[keep]
    return m, table
