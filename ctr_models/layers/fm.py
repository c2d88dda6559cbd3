"""Factorization-machine second-order interaction (Rendle, 2010), as used by DeepFM."""
from __future__ import annotations

import torch
from torch import nn


class FMInteraction(nn.Module):
    """sum_{i<j} <v_i, v_j> over F field vectors, in O(F k) via 0.5 * ((sum v)^2 - sum v^2).

    Input [B, F, k], output [B].
    """

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        square_of_sum = fields.sum(dim=1).pow(2)
        sum_of_square = fields.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)
