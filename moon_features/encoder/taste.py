"""The taste part of the served embedding: content features trained on users' click histories.

Co-engagement pairs barely carry a user's taste (on the demo shop two items one user clicked
share a colour 15.8% of the time against 12.6% by chance; docs/encoder.md), and the frozen
towers' content part carries colour and pattern in a form a CTR model uses poorly: decodable by
a linear probe, yet not arranged so that items one user would click lie together. The taste
head is trained on the question a CTR model asks: from the mean taste vector of the items a user
clicked before, does this user click this item? It maps each item's content features (each
frozen tower's top whitened principal components) through a
small MLP to a unit vector, and learns from

    logit = scale * <mean(taste(history items)), taste(target)> + bias

on the training period's impressions (clicked or not). A log with no unclicked rows (purchases
only) gets one random catalogue item per row as its negative. Only content features enter, so a
new item gets its taste vector the moment it has an image and a title. docs/encoder.md
("The taste part") has the measurements.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .whitening import whitening

PER_BLOCK = 8        # principal components per content block: more let the MLP memorise items
HIDDEN = 128
DROPOUT = 0.3
EPOCHS, BATCH_SIZE, LR, WEIGHT_DECAY = 4, 256, 3e-3, 1e-3


class TasteHead(nn.Module):
    """Content features (N, width) -> unit taste vectors (N, taste_dims)."""

    def __init__(self, content_blocks: list[int], taste_dims: int):
        super().__init__()
        self.content_blocks = list(content_blocks)
        width, inner = sum(content_blocks), PER_BLOCK * len(content_blocks)
        self.register_buffer("input_mean", torch.zeros(width))
        self.register_buffer("input_matrix", torch.zeros(width, inner))
        self.mlp = nn.Sequential(nn.Dropout(DROPOUT), nn.Linear(inner, HIDDEN), nn.ReLU(),
                                 nn.Linear(HIDDEN, taste_dims))

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp((content - self.input_mean) @ self.input_matrix), dim=-1)

    @torch.no_grad()
    def fit_inputs(self, content: torch.Tensor, shrinkage: float = 0.01) -> None:
        """Each block's top PER_BLOCK principal components, whitened (the content part's recipe)."""
        self.input_matrix.zero_()
        row = col = 0
        for width in self.content_blocks:
            mean, matrix = whitening(content[:, row: row + width], shrinkage, keep=PER_BLOCK)
            self.input_mean[row: row + width] = mean
            self.input_matrix[row: row + width, col: col + PER_BLOCK] = matrix
            row, col = row + width, col + PER_BLOCK


def click_histories(interactions: pd.DataFrame, row_of: dict[int, int], max_len: int = 50,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Training examples for the taste head: per impression, the rows of the user's last `max_len`
    clicked items strictly before it (-1 pads), the target row and the label. Impressions with
    no history or an item outside the catalogue are left out."""
    log = interactions[interactions["item_id"].isin(list(row_of))]
    log = log.sort_values(["user_id", "event_timestamp"], kind="stable")
    users, items = log["user_id"].to_numpy(), log["item_id"].map(row_of).to_numpy()
    times, labels = log["event_timestamp"].to_numpy(), log["label"].to_numpy().astype(np.float32)
    hist, targets, ys = [], [], []
    start = 0
    ends = np.flatnonzero(np.r_[users[1:] != users[:-1], True]) + 1 if len(users) else []
    for end in ends:  # one user at a time
        clicked: list[int] = []
        i = start
        while i < end:  # events at one timestamp see only earlier clicks
            j = i
            while j < end and times[j] == times[i]:
                j += 1
            if clicked:
                recent = clicked[-max_len:]
                for k in range(i, j):
                    hist.append(recent)
                    targets.append(items[k])
                    ys.append(labels[k])
            clicked += [int(items[k]) for k in range(i, j) if labels[k] > 0]
            i = j
        start = end
    out = {"hist": np.full((len(hist), max_len), -1, dtype=np.int64),
           "target": np.asarray(targets, dtype=np.int64), "label": np.asarray(ys, dtype=np.float32)}
    for r, h in enumerate(hist):
        out["hist"][r, : len(h)] = h
    if len(ys) and out["label"].min() > 0:  # purchases only: one random catalogue item per row
        rng = np.random.default_rng(seed)
        out = {"hist": np.concatenate([out["hist"], out["hist"]]),
               "target": np.concatenate([out["target"], rng.integers(0, len(row_of), len(ys))]),
               "label": np.concatenate([out["label"], np.zeros(len(ys), np.float32)])}
    return out


def fit_taste(head: TasteHead, content: torch.Tensor, examples: dict[str, np.ndarray], seed: int = 0,
              progress: bool = True) -> list[float]:
    """Fit the head's input projection on every item's content, then train it on `examples`
    (click_histories). Returns the mean training loss per epoch."""
    head.fit_inputs(content)
    head.eval()
    if len(examples["label"]) == 0:  # no click histories: the head stays at its initial weights
        return []
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    scale, bias = nn.Parameter(torch.tensor(5.0)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([*head.mlp.parameters(), scale, bias], lr=LR, weight_decay=WEIGHT_DECAY)
    hist = torch.as_tensor(examples["hist"])
    target, label = torch.as_tensor(examples["target"]), torch.as_tensor(examples["label"])
    content = content.float()
    losses = []
    head.train()
    for epoch in tqdm(range(EPOCHS), desc="taste head", disable=not progress):
        order, total = torch.randperm(len(label), generator=generator), 0.0
        for i in range(0, len(order), BATCH_SIZE):
            b = order[i: i + BATCH_SIZE]
            rows = torch.unique(torch.cat([hist[b].clamp(min=0).flatten(), target[b]]))
            taste = torch.zeros(len(content), head.mlp[-1].out_features)
            taste[rows] = head(content[rows])  # only the items this batch touches
            mask = (hist[b] >= 0).float().unsqueeze(-1)
            user = (taste[hist[b].clamp(min=0)] * mask).sum(1) / mask.sum(1)
            logit = scale * (user * taste[target[b]]).sum(-1) + bias
            loss = F.binary_cross_entropy_with_logits(logit, label[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        losses.append(total / len(order))
    head.eval()
    return losses
