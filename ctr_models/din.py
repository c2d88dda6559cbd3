"""DIN: Deep Interest Network (Zhou et al., KDD 2018) with optional MOON embeddings.

The target item and every history item are represented by the concatenation of their ID /
attribute embeddings (the sequence fields, sharing the target fields' tables) and, if used, a
trainable projection of their frozen MOON embeddings. Target attention pools the history into
one interest vector; with MOON, the cosine similarities between the target's and the history's
MOON embeddings also enter as a SimTier histogram and as a MUSE-style bias on the attention,
and learned similarity heads give, per head, the mean and max cosine of the target to the history.
A behaviour sequence besides the main one (e.g. purchases beside clicks; item ids only) has its
own target attention, the target's id embeddings as query, over its own length.
A Dice MLP over [all field embeddings, interests, similarity histogram and heads, dense] gives the logit.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .batch import CTRBatch
from .config import ConfigError, ModelConfig
from .inputs import ModelInputs
from .layers import (MLP, FeatureEmbedding, SimilarityFusion, SimilarityHeads, SimTierHistogram, TargetAttention,
                     cosine_similarity, length_mask)


@dataclass
class DINConfig(ModelConfig):
    model_type = "din"

    embed_dim: int = 16
    use_item_id: bool = True          # ID embedding of target / history items
    use_moon: bool = False            # frozen MOON embedding, projected
    moon_proj_dim: int = 16
    sim_histogram: bool = True        # SimTier features (only with use_moon)
    sim_bins: int = 10
    fuse_similarity: bool = True      # MUSE-style similarity bias on attention (only with use_moon)
    sim_heads: int = 16               # learned similarity heads, mean and max each (only with use_moon; 0 = off)
    sim_head_dim: int = 8
    attention_hidden: tuple[int, ...] = (64, 16)  # as deepctr-torch
    attention_act: str = "dice"
    attention_norm: str = "softmax"   # "softmax" (measured better, docs/ctr_models.md) or "none" (DIN paper)
    interest_product: bool = True     # feed target * interest to the MLP (an explicit bilinear match)
    dnn_hidden: tuple[int, ...] = (200, 80)
    dnn_act: str = "dice"
    dropout: float = 0.0
    item_field: str = "item_id"
    init_std: float = 1e-4


class DIN(nn.Module):
    config_class = DINConfig

    def __init__(self, config: DINConfig, inputs: ModelInputs):
        super().__init__()
        if not inputs.sequences:
            raise ConfigError("DIN needs at least one sequence field in ModelInputs.sequences")
        self.config, self.inputs = config, inputs
        self.embedding = FeatureEmbedding(
            inputs, config.embed_dim, use_item_id=config.use_item_id, item_field=config.item_field,
            moon_proj_dim=config.moon_proj_dim if config.use_moon else None, init_std=config.init_std,
            sequence_groups=True)
        if self.embedding.item_dim == 0:
            raise ConfigError("DIN has no item representation: enable use_item_id, use_moon or add attribute sequences")
        self.attention = TargetAttention(self.embedding.item_dim, config.attention_hidden,
                                         config.attention_act, config.attention_norm)
        # one attention per further sequence (its own weights: a purchase says more than a click);
        # empty for one sequence, so such a DIN keeps its parameters and state_dict keys
        self.group_attention = nn.ModuleDict({
            g: TargetAttention(config.embed_dim * len(seqs), config.attention_hidden, config.attention_act,
                               config.attention_norm) for g, seqs in self.embedding.groups.items() if seqs})
        self.sim_hist = SimTierHistogram(config.sim_bins) if config.use_moon and config.sim_histogram else None
        self.fusion = SimilarityFusion() if config.use_moon and config.fuse_similarity else None
        self.sim_heads = (SimilarityHeads(inputs.moon_dim, config.sim_heads, config.sim_head_dim)
                          if config.use_moon and config.sim_heads else None)
        width = (config.embed_dim * len(self.embedding.fields) + self.embedding.moon_dim  # target side
                 + self.embedding.item_dim * (2 if config.interest_product else 1)       # interest
                 + (self.sim_hist.out_dim if self.sim_hist is not None else 0)
                 + (self.sim_heads.out_dim if self.sim_heads is not None else 0)
                 + sum(a.dim for a in self.group_attention.values()) * (2 if config.interest_product else 1)
                 + len(inputs.dense))
        self.dnn = MLP(width, config.dnn_hidden, act=config.dnn_act, dropout=config.dropout, out_dim=1)

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        """-> logits [B]."""
        batch.validate(self.inputs)
        emb = self.embedding
        sparse = emb.sparse(batch)
        q = emb.target(batch, sparse)
        # One request's candidates share the user's history: embed, project and normalise it once.
        history = batch.history_of_first_row() if batch.shared_history else batch
        keys = emb.history_keys(history)
        mask = length_mask(history.hist_len, keys.shape[1])

        sim = None
        if self.sim_hist is not None or self.fusion is not None:
            sim = cosine_similarity(batch.item_emb, history.hist_emb, mask)
        interest = self.attention(q, keys, mask, self.fusion(sim) if self.fusion is not None else None)

        parts = [sparse[n] for n in emb.fields]
        if emb.moon is not None:
            parts.append(q[:, q.shape[1] - emb.moon_dim:])  # projected MOON of the target
        parts.append(interest)
        if self.config.interest_product:
            # An MLP learns a dot product poorly from concatenated inputs (Rendle et al., 2020);
            # the elementwise product hands it "how well the target matches this user's interest".
            parts.append(q * interest)
        if self.sim_hist is not None:
            parts.append(self.sim_hist(sim, mask))
        if self.sim_heads is not None:
            parts.append(self.sim_heads(batch.item_emb, history.hist_emb, mask))
        parts += self._group_interests(sparse, history)
        parts += [batch.dense[n].unsqueeze(1) for n in self.inputs.dense]
        return self.dnn(torch.cat(parts, dim=1)).squeeze(1)

    def _group_interests(self, sparse: dict[str, torch.Tensor], history: CTRBatch) -> list[torch.Tensor]:
        """Per further sequence: its interest (its attention over its own valid items; history of
        batch size 1 = one shared history) and, with interest_product, target * interest."""
        out = []
        for group, attention in self.group_attention.items():
            seqs = self.embedding.groups[group]
            q = torch.cat([sparse[s.target] for s in seqs], dim=-1)  # the target's id side, as the keys
            keys = torch.cat(list(self.embedding.group_history(history, group).values()), dim=-1)
            interest = attention(q, keys, length_mask(history.length(group), keys.shape[1]))
            out += [interest, q * interest] if self.config.interest_product else [interest]
        return out

    @torch.no_grad()
    def attention_weights(self, batch: CTRBatch) -> torch.Tensor:
        """[B, L] weight of each history position for each target (for diagnostics: does the
        model look at the history items that resemble the target?)."""
        emb = self.embedding
        q = emb.target(batch, emb.sparse(batch))
        keys = emb.history_keys(batch)
        mask = length_mask(batch.hist_len, keys.shape[1])
        bias = None
        if self.fusion is not None:
            bias = self.fusion(cosine_similarity(batch.item_emb, batch.hist_emb, mask))
        return self.attention.weights(q, keys, mask, bias)
