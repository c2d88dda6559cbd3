"""Dice: the data-adaptive activation of DIN (Zhou et al., 2018, section 4.3)."""
from __future__ import annotations

import torch
from torch import nn


class Dice(nn.Module):
    """p(x) * x + (1 - p(x)) * alpha * x with p = sigmoid(batch-normalised x).

    PReLU's rectifying point is fixed at 0; Dice moves it with the batch statistics of each
    unit, which the DIN paper found to help with sparse, shifting input distributions.
    Works on [B, H] and on [B, L, H] (the statistics are taken over every leading position).
    """

    def __init__(self, num_features: int, eps: float = 1e-8):
        super().__init__()
        # affine=False: Dice only needs the normalised value to place the switching point.
        self.bn = nn.BatchNorm1d(num_features, eps=eps, affine=False)
        self.alpha = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        p = torch.sigmoid(self.bn(flat)).reshape(shape)
        return x * (p + (1 - p) * self.alpha)
