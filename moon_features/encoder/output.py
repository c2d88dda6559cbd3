"""What the encoder serves: the trained vector, whitened, beside a content part from the frozen towers.

Two fixes, both fitted once on the training catalogue after training and saved as buffers (so
the embedding job, evaluation and any later run embed exactly the same way):

* Whitening (`config.whiten_output`). Contrastive training leaves the vectors in a narrow cone
  (mean cosine between items 0.98-0.998 measured on the demo shop), where a CTR model sees
  almost the same input for every item. Centred and whitened, the principal directions come
  first, so a served trained dim d is the top d components.
* A content part (`config.content_dims` = k). What the frozen towers know -- the pooled image
  features, the colour histogram, the mean title embedding -- enters the served vector through
  a fixed projection, each tower's top principal components whitened (an equal share of k
  each), beside the trained part. On the demo shop
  the training lost colour (linear-probe accuracy 1.0 in the towers' features, 0.81-0.86 after
  training) and the CTR models lost most of their lift with it; the content part keeps it
  whatever the training objective does, and the trained part adds the behaviour signal.

* A taste part (`config.taste_dims` = t, encoder/taste.py): the content features mapped by a small
  MLP trained on users' click histories, so that items one user would click lie together.

The served vector of trained dim d is L2-normalised [content (k) ; taste (t) ; trained (d)], each
part normalised first so that all weigh the same; its size is d + k + t.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .taste import TasteHead
from .whitening import whitening


class EmbeddingOutput(nn.Module):
    """Raw encoder outputs (+ content features) -> the served embedding."""

    def __init__(self, max_dim: int, whiten: bool, content_blocks: list[int], content_dims: int,
                 taste_dims: int = 0):
        super().__init__()
        self.whiten, self.content_dims = whiten, content_dims
        self.taste = TasteHead(content_blocks, taste_dims) if taste_dims else None  # fitted by fit_taste
        self.content_blocks = list(content_blocks)
        content_width = sum(content_blocks)
        if whiten:  # identity until fitted
            self.register_buffer("whiten_mean", torch.zeros(max_dim))
            self.register_buffer("whiten_matrix", torch.eye(max_dim))
        if content_dims:
            self.register_buffer("content_mean", torch.zeros(content_width))
            self.register_buffer("content_matrix", torch.zeros(content_width, content_dims))

    @torch.no_grad()
    def fit(self, z: torch.Tensor, content: torch.Tensor | None, shrinkage: float = 0.01) -> None:
        """z: raw multimodal outputs (N, max_dim); content: content features (N, width)."""
        if self.whiten:
            mean, matrix = whitening(F.normalize(z, dim=-1), shrinkage)
            self.whiten_mean.copy_(mean)
            self.whiten_matrix.copy_(matrix)
        if self.content_dims:
            # Each tower (image, colour, text) gets an equal share of the k dimensions: one PCA over
            # all of them let whichever block had the most variance crowd out the others.
            n = len(self.content_blocks)
            shares = [self.content_dims // n + (i < self.content_dims % n) for i in range(n)]
            self.content_matrix.zero_()
            row = col = 0
            for width, keep in zip(self.content_blocks, shares):
                mean, matrix = whitening(content[:, row: row + width], shrinkage, keep=keep)
                self.content_mean[row: row + width] = mean
                self.content_matrix[row: row + width, col: col + keep] = matrix
                row, col = row + width, col + keep

    def forward(self, z: torch.Tensor, content: torch.Tensor | None, dim: int) -> torch.Tensor:
        """z: raw outputs (B, max_dim); dim: the trained part's size -> (B, [content_dims +
        taste_dims +] dim)."""
        if self.whiten:
            z = (F.normalize(z, dim=-1) - self.whiten_mean) @ self.whiten_matrix
        parts = [F.normalize(z[..., :dim], dim=-1)]
        if self.taste is not None:
            parts.insert(0, self.taste(content))
        if self.content_dims:
            parts.insert(0, F.normalize((content - self.content_mean) @ self.content_matrix, dim=-1))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1) / len(parts) ** 0.5
