"""DIN target attention with the first layer decomposed so that only q*k is paid per pair.

The DIN attention unit scores each history item k against the target q with an MLP over
[q, k, q - k, q * k]. Its first layer W = [W_q | W_k | W_d | W_p] is linear, so

    W [q, k, q-k, q*k] + b = (W_q + W_d) q + b  +  (W_k - W_d) k  +  W_p (q * k)
                           =        c(q)        +  k^T ((W_k - W_d)^T + diag(q) W_p^T)
                           =        c(q)        +  k^T A(q)

c(q) is computed once per target and A(q) (d x h) once per target too, so each (target,
history item) pair costs one d x h product instead of the naive 4d x h one and the [B, L, 4d]
concatenation is never materialised. `naive_first_layer` keeps the textbook form as a reference
(a test proves both agree).

When every target shares one history (a serving request: one user, many candidates; keys of
batch size 1), the key term (W_k - W_d) k is computed once per history item, and the per-pair
term W_p (q * k) becomes a single [B * n, d] x [d, h] product over the n valid positions.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .mlp import MLP, activation


def length_mask(hist_len: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B] lengths -> bool [B, L], True at the valid (left-aligned) positions."""
    positions = torch.arange(max_len, device=hist_len.device)
    return positions.unsqueeze(0) < hist_len.clamp(min=0).unsqueeze(1)


class TargetAttention(nn.Module):
    """Weighted sum of the history items, weights from an MLP over (target, item) pairs.

    q [B, d], keys [B, L, d], mask bool [B, L] -> pooled interest [B, d].
    normalization: "none" keeps DIN's raw weights (the paper argues the sum's magnitude carries
    the intensity of interest); "softmax" normalises over the valid positions.
    An optional additive bias [B, L] (e.g. a learned multiple of the MOON similarity) joins the
    logits before masking; this is how MUSE-style similarity fusion enters.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 16), act: str = "dice",
                 normalization: str = "none"):
        super().__init__()
        if not hidden:
            raise ValueError("TargetAttention needs at least one hidden layer")
        if normalization not in ("none", "softmax"):
            raise ValueError(f"normalization must be 'none' or 'softmax', got {normalization!r}")
        self.dim = dim
        self.normalization = normalization
        self.first = nn.Linear(4 * dim, hidden[0])
        self.first_act = activation(act, hidden[0])
        self.rest = MLP(hidden[0], hidden[1:], act=act, out_dim=1)

    # -- first layer, two ways -------------------------------------------------------------
    def naive_first_layer(self, q: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        qe = q.unsqueeze(1).expand_as(keys)
        return self.first(torch.cat([qe, keys, qe - keys, qe * keys], dim=-1))

    def decomposed_first_layer(self, q: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        w_q, w_k, w_d, w_p = self.first.weight.split(self.dim, dim=1)  # each [h, d]
        c = q @ (w_q + w_d).t() + self.first.bias                      # [B, h]
        a = (w_k - w_d).t().unsqueeze(0) + q.unsqueeze(2) * w_p.t().unsqueeze(0)  # [B, d, h]
        return torch.baddbmm(c.unsqueeze(1), keys, a)                   # [B, L, h]

    def shared_first_layer(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q [B, d], one history k [n, d] -> [B, n, h]; equal to decomposed_first_layer over keys
        repeated B times, with only the q * k term paid per pair."""
        w_q, w_k, w_d, w_p = self.first.weight.split(self.dim, dim=1)
        c = torch.addmm(self.first.bias, q, (w_q + w_d).t())  # [B, h]: once per target
        kk = k @ (w_k - w_d).t()                                # [n, h]: once per history item
        pair = (q.unsqueeze(1) * k.unsqueeze(0)).reshape(-1, self.dim) @ w_p.t()  # [B * n, h]
        # in place: the [B, n, h] activations are the largest tensors of a serving request, and
        # mm's backward needs only its inputs
        return pair.view(len(q), len(k), c.shape[1]).add_(c.unsqueeze(1)).add_(kk.unsqueeze(0))

    # -- scoring and pooling ---------------------------------------------------------------
    def scores(self, q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
               naive: bool = False) -> torch.Tensor:
        """Attention logits [B, L]; 0 at padding positions.

        Only the valid positions go through the activation and the upper layers (packed with the
        mask): real histories are often much shorter than max_len, and this also keeps padding
        out of Dice's batch statistics.
        """
        h = self.naive_first_layer(q, keys) if naive else self.decomposed_first_layer(q, keys)
        packed = self.rest(self.first_act(h[mask])).squeeze(-1)  # [n_valid]
        return torch.zeros(mask.shape, dtype=packed.dtype, device=packed.device).masked_scatter(mask, packed)

    def forward(self, q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                bias: torch.Tensor | None = None, naive: bool = False) -> torch.Tensor:
        if keys.shape[0] == 1 and not naive:
            return self._shared_forward(q, keys[0], mask[0], bias)
        keys = keys.expand(len(q), -1, -1)
        weights = self.weights(q, keys, mask, bias, naive=naive)
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)

    def weights(self, q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                bias: torch.Tensor | None = None, naive: bool = False) -> torch.Tensor:
        """The weight [B, L] each history position gets in the pooled interest; 0 at padding."""
        keys = keys.expand(len(q), -1, -1)
        mask = mask.expand(len(q), -1)
        logits = self.scores(q, keys, mask, naive=naive)
        if bias is not None:
            logits = logits + bias
        if self.normalization == "softmax":
            logits = logits.masked_fill(~mask, float("-inf"))
            # a row with no valid position is all -inf -> NaN; an empty history pools to zeros
            return torch.nan_to_num(torch.softmax(logits, dim=1), nan=0.0)
        return logits * mask

    def _shared_forward(self, q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                        bias: torch.Tensor | None) -> torch.Tensor:
        """One history keys [L, d] (valid positions: the left-aligned prefix of mask [L]) for all
        B targets. Same result as the general path; nothing is repeated per target but q * k."""
        k = keys[: int(mask.sum())]
        logits = self.rest(self.first_act(self.shared_first_layer(q, k))).squeeze(-1)  # [B, n]
        if bias is not None:
            logits = logits + bias[:, : len(k)]
        weights = torch.softmax(logits, dim=1) if self.normalization == "softmax" else logits
        return weights @ k  # an empty history pools to zeros
