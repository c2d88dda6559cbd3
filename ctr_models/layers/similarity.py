"""Multimodal similarity signals between the target and the history (MUSE / SimTier).

Both come from the frozen MOON embeddings, so they need no gradient: the cosine similarity of
the target item to each history item summarises "how much of this user's history looks like
this item" in a way that still works for items whose ID embedding never trained (cold items).

- SimTier (Sheng et al., 2024): a histogram of those similarities over fixed tiers in [-1, 1],
  a fixed-size feature whatever the history length.
- MUSE (Wu et al., 2025): fuse the similarity into target attention; here as a learned affine
  bias on the attention logits.
- Similarity heads: H learned projections of the MOON vector, and per head the mean and max
  cosine between the target and the history items. One fixed cosine mixes every facet of an
  item (colour, pattern, category, taste) with fixed weights; a head can single one out, and the
  mean over the history of a head's cosine is the learned form of "share of this user's clicks
  that match the target on this facet", the cross a logistic regression on true attributes uses.
"""
from __future__ import annotations

import torch
from torch import nn


def cosine_similarity(item_emb: torch.Tensor, hist_emb: torch.Tensor, mask: torch.Tensor,
                      eps: float = 1e-8) -> torch.Tensor:
    """[B, D], [B or 1, L, D], bool [B or 1, L] -> [B, L]; 0 at padding and for all-zero
    (unknown) vectors. A history of batch size 1 is shared by every target (one request)."""
    q = item_emb / item_emb.norm(dim=-1, keepdim=True).clamp(min=eps)
    k = hist_emb / hist_emb.norm(dim=-1, keepdim=True).clamp(min=eps)
    if k.shape[0] == 1:
        sim = q @ k[0].t()  # one [B, D] x [D, L] product instead of B matrix-vector ones
    else:
        sim = torch.bmm(k, q.unsqueeze(2)).squeeze(2)
    return sim * mask


class SimTierHistogram(nn.Module):
    """[B, L] similarities + mask -> [B, n_bins + 2]: tier fractions, mean and max similarity.

    Fractions (not raw counts) so that long and short histories are comparable; the mean and
    max add the two summary statistics a histogram with coarse bins blurs. Empty history -> 0.
    """

    def __init__(self, n_bins: int = 10):
        super().__init__()
        if n_bins < 1:
            raise ValueError("n_bins must be >= 1")
        self.n_bins = n_bins
        self.register_buffer("edges", torch.linspace(-1.0, 1.0, n_bins + 1)[1:-1], persistent=False)

    @property
    def out_dim(self) -> int:
        return self.n_bins + 2

    def forward(self, sim: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.expand_as(sim)  # a shared history's mask is [1, L]
        m = mask.to(sim.dtype)
        n = m.sum(dim=1, keepdim=True)
        tier = torch.bucketize(sim.clamp(-1.0, 1.0).contiguous(), self.edges)  # [B, L] in [0, n_bins)
        counts = torch.zeros(sim.shape[0], self.n_bins, dtype=sim.dtype, device=sim.device)
        counts.scatter_add_(1, tier, m)
        frac = counts / n.clamp(min=1.0)
        mean = (sim * m).sum(dim=1, keepdim=True) / n.clamp(min=1.0)
        mx = sim.masked_fill(~mask, -1.0).max(dim=1, keepdim=True).values if sim.shape[1] else mean
        mx = torch.where(n > 0, mx, torch.zeros_like(mx))
        return torch.cat([frac, mean, mx], dim=1)


class SimilarityFusion(nn.Module):
    """MUSE-style: attention logit += scale * sim + shift, scale and shift learned.

    Starts at scale 1 so the content similarity shapes attention from the first step; the model
    can turn it down if the ID-based scores are more informative.
    """

    def __init__(self, init_scale: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))
        self.shift = nn.Parameter(torch.tensor(0.0))

    def forward(self, sim: torch.Tensor) -> torch.Tensor:
        return self.scale * sim + self.shift


class SimilarityHeads(nn.Module):
    """item_emb [B, D], hist_emb [B or 1, L, D], mask [B or 1, L] -> [B, 2H]: per head, the mean
    and the max over the valid history of cos(P_h target, P_h item). Empty history -> 0.

    The projection has no bias, so an unknown (all-zero) MOON vector stays zero and has cosine 0
    with everything, as in `cosine_similarity`."""

    def __init__(self, moon_dim: int, heads: int, head_dim: int, eps: float = 1e-8):
        super().__init__()
        if heads < 1 or head_dim < 1:
            raise ValueError("SimilarityHeads needs heads >= 1 and head_dim >= 1")
        self.heads, self.head_dim, self.eps = heads, head_dim, eps
        self.proj = nn.Linear(moon_dim, heads * head_dim, bias=False)

    @property
    def out_dim(self) -> int:
        return 2 * self.heads

    def unit(self, emb: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., H, head_dim]: each head's projection over its norm."""
        z = self.proj(emb).unflatten(-1, (self.heads, self.head_dim))
        return z / z.norm(dim=-1, keepdim=True).clamp(min=self.eps)

    def forward(self, item_emb: torch.Tensor, hist_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if hist_emb.shape[0] == 1:  # one history shared by every target (a serving request)
            n = int(mask.sum())  # its valid positions are the left-aligned prefix (length_mask)
            return self.shared_pool(self.unit(item_emb), self.unit(hist_emb[0, :n]))
        # Training (B histories): divide the [B, L, H] dot products by the norms rather than
        # normalise the [B, L, H, d] projections. Same cosines, less elementwise work on the
        # largest tensors forward and backward, where the heads' training cost was
        # (docs/benchmarks.md, "CTR throughput").
        q = self.proj(item_emb).unflatten(-1, (self.heads, self.head_dim))   # [B, H, d]
        k = self.proj(hist_emb).unflatten(-1, (self.heads, self.head_dim))   # [B, L, H, d]
        dots = (k * q.unsqueeze(1)).sum(dim=-1)                                # [B, L, H]
        norms = k.norm(dim=-1).clamp(min=self.eps) * q.norm(dim=-1).clamp(min=self.eps).unsqueeze(1)
        return self.mean_max((dots / norms).transpose(1, 2), mask)

    def shared_pool(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Unit heads q [B, H, d] against one history's n valid items k [n, H, d] -> [B, 2H] (per
        head the mean and the max cosine; 0 for n = 0). One [B, d] x [d, n] product per head and
        no masking (the serving path: masking the padded [B, H, L] cosines cost more than the product)."""
        if len(k) == 0:
            return q.new_zeros(len(q), 2 * self.heads)
        sim = q.transpose(0, 1) @ k.permute(1, 2, 0)  # [H, B, n]
        return torch.cat([sim.mean(dim=2), sim.amax(dim=2)], dim=0).t()

    @staticmethod
    def mean_max(sim: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cosines sim [B, H, L], mask [B or 1, L] -> [B, 2H]: per head the mean and the max over
        the valid positions; 0 for an empty history."""
        valid = mask.unsqueeze(1).expand_as(sim)
        n = valid.sum(dim=2).to(sim.dtype)                                     # [B, H]
        mean = (sim * valid).sum(dim=2) / n.clamp(min=1.0)
        if sim.shape[2] == 0:
            return torch.cat([mean, mean], dim=1)
        mx = sim.masked_fill(~valid, -1.0).max(dim=2).values
        return torch.cat([mean, torch.where(n > 0, mx, torch.zeros_like(mx))], dim=1)
