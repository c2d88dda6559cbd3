"""Contrastive losses (the "task" side: the model only computes representations).

All losses are Matryoshka: computed on every served prefix dimension and averaged, so each
head in `embedding_dims` is trained, not only the largest.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .modeling import normalize_dim

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp: temperature never below 0.01


def _info_nce(q, k, scale, q_ids, k_ids, extra=None, extra_ids=None, valid=None, exclude_ids=None, key_logq=None):
    """Row i of q has positive k[i]; negatives are the other rows of k plus `extra`.
    A negative carrying the positive's item id (a duplicate in the batch / queue) or the
    query's own id (`exclude_ids`) is a false negative and is masked out. `key_logq` (one value
    per key, k then extra) is subtracted from the logits: the sampled-softmax (logQ) correction."""
    keys = k if extra is None else torch.cat([k, extra])
    ids = k_ids if extra_ids is None else torch.cat([k_ids, extra_ids])
    logits = scale * q @ keys.T
    if key_logq is not None:
        logits = logits - key_logq[None, :]
    false_neg = ids[None, :] == k_ids[:, None]
    if exclude_ids is not None:
        false_neg |= ids[None, :] == exclude_ids[:, None]
    diag = torch.arange(len(q), device=q.device)
    false_neg[diag, diag] = False
    logits = logits.masked_fill(false_neg, float("-inf"))
    loss = F.cross_entropy(logits, diag, reduction="none")
    if valid is not None:
        if not valid.any():
            return logits.sum() * 0.0
        loss = loss[valid]
    return loss.mean()


def alignment_loss(z_image, z_text, ids, logit_scale, dims, valid=None):
    """Stage-1 image<->title InfoNCE (both directions), in-batch negatives, learnable temperature.
    Also MOON2.0's intra-product loss in stage 2 (an item's image against its own title)."""
    scale = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
    total = 0.0
    for d in dims:
        zi, zt = normalize_dim(z_image, d), normalize_dim(z_text, d)
        total = total + 0.5 * (_info_nce(zi, zt, scale, ids, ids, valid=valid)
                               + _info_nce(zt, zi, scale, ids, ids, valid=valid))
    return total / len(dims)


def inter_product_loss(queries: dict, z_pos, pos_ids, query_ids, logit_scale, dims, negatives=None,
                       negative_ids=None, query_valid: dict | None = None, key_logq=None):
    """MOON2.0 inter-product loss: image / text / multimodal queries of item A against the
    multimodal embedding of the co-engaged item B; negatives = other B's in the batch +
    same-category hard negatives + uniform catalogue negatives + the memory queue (passed
    together as `negatives`).

    `key_logq` (positives then negatives): log of how much more often than uniformly each key
    was sampled. In-batch and queue keys are drawn from the positives' distribution, so without
    the correction popular items are pushed down as negatives far more often than they are
    pulled up as positives, and full-catalogue retrieval loses the popularity signal."""
    scale = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
    query_valid = query_valid or {}
    total = 0.0
    for d in dims:
        zp = normalize_dim(z_pos, d)
        zn = None if negatives is None else normalize_dim(negatives, d)
        for mode, zq in queries.items():
            total = total + _info_nce(normalize_dim(zq, d), zp, scale, query_ids, pos_ids, zn, negative_ids,
                                      valid=query_valid.get(mode), exclude_ids=query_ids, key_logq=key_logq)
    return total / (len(dims) * len(queries))
