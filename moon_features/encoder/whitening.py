"""PCA whitening of a block of features (the served embedding's output and taste parts)."""
from __future__ import annotations

import torch


def whitening(x: torch.Tensor, shrinkage: float, keep: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, matrix) that centre rows of x, rotate them to principal components (largest first,
    the first `keep`) and scale each to unit variance; `shrinkage` (a fraction of the mean
    variance) keeps near-empty directions from being blown up into noise."""
    x = x.double()
    mean = x.mean(0)
    # SVD of the centred rows, not eigh of the covariance: a tower's width (1,280) can exceed the
    # number of items, and eigh fails on such a rank-deficient matrix.
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    var = s ** 2 / max(len(x) - 1, 1)
    matrix = vt.T / (var + shrinkage * var.mean()).sqrt()
    keep = x.shape[1] if keep is None else keep
    if matrix.shape[1] < keep:  # fewer items than dimensions asked for: the rest stay zero
        matrix = torch.cat([matrix, matrix.new_zeros(matrix.shape[0], keep - matrix.shape[1])], dim=1)
    return mean.float(), matrix[:, :keep].float()
