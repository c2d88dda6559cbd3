"""Embedding lookups shared by every model: one table per sparse field, sequences share their
target's table, and the frozen MOON embedding enters through a trainable projection.
"""
from __future__ import annotations

import torch
from torch import nn

from ..batch import CTRBatch
from ..inputs import ModelInputs


def safe_ids(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Map ids outside [0, vocab_size) to the padding id 0, so an unseen user or item at serving
    time reads the all-zero padding row instead of crashing the lookup."""
    return torch.where((ids >= 0) & (ids < vocab_size), ids, torch.zeros_like(ids))


class FeatureEmbedding(nn.Module):
    """Looks up every field of a CTRBatch.

    use_item_id=False drops the item-id field (and the sequences over it): the item is then
    represented only by its attributes and, if used, its MOON embedding.
    moon_proj_dim: size of the projection of the frozen MOON vectors (None = do not use MOON).
    init_std: small like deepctr-torch's 1e-4, so that ids never seen in training (cold items)
    stay close to the zero padding row instead of injecting random noise.
    sequence_groups: the model reads behaviour sequences besides the main one (`group_history`);
    a model that does not refuses inputs with them (SequenceGroupsUnsupportedError), rather than
    reading their positions as the main sequence's.
    """

    def __init__(self, inputs: ModelInputs, dim: int, *, use_item_id: bool = True,
                 item_field: str = "item_id", moon_proj_dim: int | None = None,
                 init_std: float = 1e-4, sequence_groups: bool = False):
        super().__init__()
        if not sequence_groups:
            inputs.require_one_sequence("this model")
        self.inputs = inputs
        self.dim = dim
        names = [f.name for f in inputs.sparse]
        self.fields = [n for n in names if use_item_id or n != item_field]
        self.sequences = [s for s in inputs.sequences if s.target in self.fields and not s.group]
        # group -> its sequence fields (over kept fields), for the sequences besides the main one
        self.groups = {g: [s for s in inputs.group_sequences(g) if s.target in self.fields]
                       for g in inputs.sequence_groups}
        self.vocab = {f.name: f.vocab_size for f in inputs.sparse}
        self.tables = nn.ModuleDict({n: nn.Embedding(self.vocab[n], dim, padding_idx=0) for n in self.fields})
        for t in self.tables.values():
            nn.init.normal_(t.weight, std=init_std)
            with torch.no_grad():
                t.weight[0].zero_()
        self.item_field = item_field
        self.moon = None
        if moon_proj_dim:
            if inputs.moon_dim is None:
                raise ValueError("the model config asks for MOON embeddings but ModelInputs.moon_dim is None")
            self.moon = nn.Linear(inputs.moon_dim, moon_proj_dim)
        self.moon_dim = moon_proj_dim or 0

    @property
    def item_dim(self) -> int:
        """Width of one item representation (target or history position)."""
        return self.dim * len(self.sequences) + self.moon_dim

    def lookup(self, name: str, ids: torch.Tensor) -> torch.Tensor:
        return self.tables[name](safe_ids(ids, self.vocab[name]))

    def sparse(self, batch: CTRBatch) -> dict[str, torch.Tensor]:
        return {n: self.lookup(n, batch.sparse[n]) for n in self.fields}

    def history(self, batch: CTRBatch) -> dict[str, torch.Tensor]:
        """Sequence name -> [B, L, dim], through the target field's table."""
        return {s.name: self.lookup(s.target, batch.hist[s.name]) for s in self.sequences}

    def group_history(self, batch: CTRBatch, group: str) -> dict[str, torch.Tensor]:
        """A sequence group's fields -> [B, L_group, dim], through their target fields' tables."""
        return {s.name: self.lookup(s.target, batch.hist[s.name]) for s in self.groups[group]}

    def target(self, batch: CTRBatch, sparse: dict[str, torch.Tensor]) -> torch.Tensor:
        """q [B, item_dim]: the target item in the layout of a history position."""
        q = [sparse[s.target] for s in self.sequences]
        if self.moon is not None:
            q.append(self.moon(batch.item_emb))
        return torch.cat(q, dim=-1)

    def history_keys(self, batch: CTRBatch) -> torch.Tensor:
        """keys [B, L, item_dim]: every history position, aligned with `target`."""
        k = list(self.history(batch).values())
        if self.moon is not None:
            k.append(self.moon(batch.hist_emb))
        return torch.cat(k, dim=-1)

    def history_width(self, batch: CTRBatch) -> int:
        main = [s.name for s in self.inputs.sequences if not s.group and s.name in batch.hist]
        if main:
            return batch.hist[main[0]].shape[1]
        return batch.hist_emb.shape[1] if batch.hist_emb is not None else 0
