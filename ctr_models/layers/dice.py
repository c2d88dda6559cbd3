"""Dice: the data-adaptive activation of DIN (Zhou et al., 2018, section 4.3)."""
from __future__ import annotations

import torch
from torch import nn


class DiceNorm(nn.BatchNorm1d):
    """BatchNorm1d that normalises a training batch of fewer than 2 rows (e.g. a batch whose
    histories are all empty) with the running statistics instead of failing: batch statistics
    need >= 2 rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            training=False, eps=self.eps)
        return super().forward(x)


class Dice(nn.Module):
    """p(x) * x + (1 - p(x)) * alpha * x with p = sigmoid(batch-normalised x).

    PReLU's rectifying point is fixed at 0; Dice moves it with the batch statistics of each
    unit, which the DIN paper found to help with sparse, shifting input distributions.
    Works on [B, H] and on [B, L, H] (the statistics are taken over every leading position).
    """

    def __init__(self, num_features: int, eps: float = 1e-8):
        super().__init__()
        # affine=False: Dice only needs the normalised value to place the switching point.
        self.bn = DiceNorm(num_features, eps=eps, affine=False)
        self.alpha = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        # p * x + (1 - p) * alpha * x = x * (alpha + p * (1 - alpha)): three passes over the
        # activations instead of six; this layer runs on every (target, history item) pair.
        p = self.bn(flat).sigmoid_()  # in place is safe: BatchNorm's backward does not need its output
        if not torch.is_grad_enabled():  # inference: reuse p's buffer instead of two more allocations
            return p.mul_(1 - self.alpha).add_(self.alpha).mul_(flat).reshape(shape)
        return (flat * torch.addcmul(self.alpha, p, 1 - self.alpha)).reshape(shape)
