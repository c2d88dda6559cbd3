"""DeepFM (Guo et al., IJCAI 2017) with optional pooled sequences and MOON embeddings.

Fields for the FM: every sparse field's embedding, each sequence field mean-pooled over its
valid positions (as deepctr-torch's VarLenSparseFeat(combiner="mean"); a behaviour sequence
besides the main one, e.g. purchases beside clicks, pooled over its own length), and with MOON the
projected MOON embedding of the target and the mean of the history's. linear + FM + DNN logits
are summed; the DNN also sees the dense features and, with MOON, the SimTier similarity histogram.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .batch import CTRBatch
from .config import ConfigError, ModelConfig
from .inputs import ModelInputs
from .layers import MLP, FeatureEmbedding, FMInteraction, SimTierHistogram, cosine_similarity, length_mask
from .layers.embedding import safe_ids


@dataclass
class DeepFMConfig(ModelConfig):
    model_type = "deepfm"

    embed_dim: int = 16
    use_item_id: bool = True
    use_moon: bool = False
    sequence_pooling: str = "mean"    # "mean" or "none" (ignore the sequences)
    sim_histogram: bool = True        # only with use_moon
    sim_bins: int = 10
    dnn_hidden: tuple[int, ...] = (256, 128)
    dnn_act: str = "relu"
    dropout: float = 0.0
    item_field: str = "item_id"
    init_std: float = 1e-4


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, L, d], bool [B, L] -> [B, d]; zeros for an empty history."""
    m = mask.to(x.dtype).unsqueeze(2)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class DeepFM(nn.Module):
    config_class = DeepFMConfig

    def __init__(self, config: DeepFMConfig, inputs: ModelInputs):
        super().__init__()
        if config.sequence_pooling not in ("mean", "none"):
            raise ConfigError(f"sequence_pooling must be 'mean' or 'none', got {config.sequence_pooling!r}")
        self.config, self.inputs = config, inputs
        k = config.embed_dim
        # the MOON projection has the field width k so it can take part in the FM
        self.embedding = FeatureEmbedding(
            inputs, k, use_item_id=config.use_item_id, item_field=config.item_field,
            moon_proj_dim=k if config.use_moon else None, init_std=config.init_std, sequence_groups=True)
        emb = self.embedding
        self.use_sequences = config.sequence_pooling == "mean"
        pooled = len(emb.sequences) + sum(len(g) for g in emb.groups.values())
        n_fields = len(emb.fields) + (pooled if self.use_sequences else 0) + (2 if config.use_moon else 0)
        if n_fields == 0:
            raise ConfigError("DeepFM has no fields to interact")
        self.linear = nn.ModuleDict({n: nn.Embedding(emb.vocab[n], 1, padding_idx=0) for n in emb.fields})
        for t in self.linear.values():
            nn.init.zeros_(t.weight)
        self.dense_linear = nn.Linear(len(inputs.dense), 1) if inputs.dense else None
        self.bias = nn.Parameter(torch.zeros(1))
        self.fm = FMInteraction()
        self.sim_hist = SimTierHistogram(config.sim_bins) if config.use_moon and config.sim_histogram else None
        width = n_fields * k + len(inputs.dense) + (self.sim_hist.out_dim if self.sim_hist is not None else 0)
        self.dnn = MLP(width, config.dnn_hidden, act=config.dnn_act, dropout=config.dropout, out_dim=1)

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        """-> logits [B]."""
        batch.validate(self.inputs)
        emb = self.embedding
        sparse = emb.sparse(batch)
        fields = [sparse[n] for n in emb.fields]
        extra = []
        mask = None
        # One request's candidates share the user's history: pool it once and broadcast (expand
        # is a no-op when every row has its own history).
        history = batch.history_of_first_row() if batch.shared_history else batch
        n = batch.size
        if self.use_sequences or self.config.use_moon:
            mask = length_mask(history.hist_len, emb.history_width(history))
        if self.use_sequences:
            hist = emb.history(history)
            fields += [masked_mean(hist[s.name], mask).expand(n, -1) for s in emb.sequences]
            fields += self._pooled_groups(history, n)
        if self.config.use_moon:
            fields.append(emb.moon(batch.item_emb))
            fields.append(masked_mean(emb.moon(history.hist_emb), mask).expand(n, -1))
            if self.sim_hist is not None:
                extra.append(self.sim_hist(cosine_similarity(batch.item_emb, history.hist_emb, mask), mask))
        stacked = torch.stack(fields, dim=1)  # [B, F, k]

        logit = self.bias + sum(self.linear[n](safe_ids(batch.sparse[n], emb.vocab[n])).squeeze(1)
                                for n in emb.fields)
        dense = [batch.dense[n].unsqueeze(1) for n in self.inputs.dense]
        if self.dense_linear is not None:
            logit = logit + self.dense_linear(torch.cat(dense, dim=1)).squeeze(1)
        logit = logit + self.fm(stacked)
        dnn_in = torch.cat([stacked.flatten(1)] + dense + extra, dim=1)
        return logit + self.dnn(dnn_in).squeeze(1)

    def _pooled_groups(self, history: CTRBatch, n: int) -> list[torch.Tensor]:
        """Each field of the sequences besides the main one, mean-pooled over its own length."""
        out = []
        for group, sequences in self.embedding.groups.items():
            hist = self.embedding.group_history(history, group)
            for s in sequences:
                mask = length_mask(history.length(group), hist[s.name].shape[1])
                out.append(masked_mean(hist[s.name], mask).expand(n, -1))
        return out
