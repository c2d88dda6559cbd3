"""DIN in Keras: ctr_models.din.DIN over a dict of tensors, same config and same layers.

Target and history items = concatenated ID / attribute embeddings (+ projected frozen MOON
vector); target attention pools the history, with MOON the cosine similarities enter as a
SimTier histogram, as a MUSE-style bias on the attention logits and through learned similarity
heads (mean and max cosine per head); a further behaviour sequence (item ids only) has its own
target attention over its own length; a Dice MLP gives the logit.
"""
from __future__ import annotations

import tensorflow as tf

from ..config import ConfigError
from ..din import DINConfig
from ..inputs import ModelInputs, length_name
from .features import check_features, history_of_first_row
from .layers import (MLP, FeatureEmbedding, SimilarityFusion, SimilarityHeads, SimTierHistogram, TargetAttention,
                     cosine_similarity, length_mask)


class DIN(tf.keras.Model):
    config_class = DINConfig

    def __init__(self, config: DINConfig, inputs: ModelInputs, **kwargs):
        super().__init__(**kwargs)
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
        # as torch's group_attention: one attention per further sequence, none for one sequence
        self.group_attention = {
            g: TargetAttention(config.embed_dim * len(seqs), config.attention_hidden, config.attention_act,
                               config.attention_norm, name=f"attention_{g}")
            for g, seqs in self.embedding.groups.items() if seqs}
        self.sim_hist = SimTierHistogram(config.sim_bins) if config.use_moon and config.sim_histogram else None
        self.fusion = SimilarityFusion() if config.use_moon and config.fuse_similarity else None
        self.sim_heads = (SimilarityHeads(inputs.moon_dim, config.sim_heads, config.sim_head_dim)
                          if config.use_moon and config.sim_heads else None)
        width = (config.embed_dim * len(self.embedding.fields) + self.embedding.moon_dim
                 + self.embedding.item_dim * (2 if config.interest_product else 1)
                 + (self.sim_hist.out_dim if self.sim_hist is not None else 0)
                 + (self.sim_heads.out_dim if self.sim_heads is not None else 0)
                 + sum(a.dim for a in self.group_attention.values()) * (2 if config.interest_product else 1)
                 + len(inputs.dense))
        self.dnn = MLP(width, config.dnn_hidden, act=config.dnn_act, dropout=config.dropout, out_dim=1)

    def call(self, features, training=None, shared_history: bool = False):
        """-> logits [B]. `shared_history`: every row has row 0's history (one request: one user,
        many candidates), which is then embedded once (torch: CTRBatch.shared_history)."""
        check_features(features, self.inputs)
        emb = self.embedding
        sparse = emb.sparse(features)
        q = emb.target(features, sparse)
        history = history_of_first_row(features, self.inputs) if shared_history else features
        keys = emb.history_keys(history)
        mask = length_mask(history["hist_len"], tf.shape(keys)[1])

        sim = None
        if self.sim_hist is not None or self.fusion is not None:
            sim = cosine_similarity(features["item_emb"], history["hist_emb"], mask)
        bias = self.fusion(sim) if self.fusion is not None else None
        interest = self.attention(q, keys, mask, bias, training=training, shared=shared_history)

        parts = [sparse[n] for n in emb.fields]
        if emb.moon is not None:
            parts.append(q[:, emb.item_dim - emb.moon_dim:])  # projected MOON of the target
        parts.append(interest)
        if self.config.interest_product:  # as the torch DIN: target * interest into the MLP
            parts.append(q * interest)
        if self.sim_hist is not None:
            parts.append(self.sim_hist(sim, mask))
        if self.sim_heads is not None:
            parts.append(self.sim_heads(features["item_emb"], history["hist_emb"], mask))
        parts += self._group_interests(sparse, history, training, shared_history)
        parts += [tf.cast(features[n], tf.float32)[:, None] for n in self.inputs.dense]
        return tf.squeeze(self.dnn(tf.concat(parts, axis=1), training=training), 1)

    def _group_interests(self, sparse: dict, history: dict, training, shared: bool) -> list:
        """As torch's DIN._group_interests: per further sequence its interest (and target * interest)."""
        out = []
        for group, attention in self.group_attention.items():
            seqs = self.embedding.groups[group]
            q = tf.concat([sparse[s.target] for s in seqs], axis=-1)
            keys = tf.concat(list(self.embedding.group_history(history, group).values()), axis=-1)
            mask = length_mask(history[length_name(group)], tf.shape(keys)[1])
            interest = attention(q, keys, mask, None, training=training, shared=shared)
            out += [interest, q * interest] if self.config.interest_product else [interest]
        return out

    def embedding_tables(self) -> list:
        """The weights torch keeps in nn.Embedding (embedding_weight_decay applies to them)."""
        return list(self.embedding.tables.values())

    def load_torch(self, model) -> None:
        """Copy the weights of a ctr_models.DIN built with the same config and inputs."""
        self.embedding.load_torch(model.embedding)
        self.attention.load_torch(model.attention)
        for group, attention in self.group_attention.items():
            attention.load_torch(model.group_attention[group])
        if self.fusion is not None:
            self.fusion.load_torch(model.fusion)
        if self.sim_heads is not None:
            self.sim_heads.load_torch(model.sim_heads)
        self.dnn.load_torch(model.dnn)
