"""A plain feed-forward stack with a choice of activation; the building block of every tower."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .dice import Dice


class PReLU(nn.Module):
    """PReLU with one slope per unit of the last dimension (torch's acts on dim 1, which is the
    sequence axis for [B, L, H] attention inputs)."""

    def __init__(self, num_features: int, init: float = 0.25):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((num_features,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, self.alpha * x)


def activation(name: str, width: int) -> nn.Module:
    name = name.lower()
    if name == "dice":
        return Dice(width)
    if name == "prelu":
        return PReLU(width)
    if name == "relu":
        return nn.ReLU()
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"unknown activation {name!r}; use one of dice, prelu, relu, sigmoid")


class MLP(nn.Sequential):
    """in_dim -> hidden[0] -> ... -> hidden[-1] (-> out_dim if given, without activation)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], act: str = "relu",
                 dropout: float = 0.0, out_dim: int | None = None):
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), activation(act, h)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        if out_dim is not None:
            layers.append(nn.Linear(width, out_dim))
            width = out_dim
        super().__init__(*layers)
        self.out_dim = width
