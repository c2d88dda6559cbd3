"""DeepFM in Keras: ctr_models.deepfm.DeepFM over a dict of tensors, same config and layers.

FM fields: every sparse field, each sequence mean-pooled over its valid positions (a sequence
group besides the main one over its own length), and with MOON
the projected target vector and the mean projected history vector; linear + FM + DNN logits are
summed, the DNN also sees the dense features and (with MOON) the SimTier histogram.
"""
from __future__ import annotations

import tensorflow as tf

from ..config import ConfigError
from ..deepfm import DeepFMConfig
from ..inputs import ModelInputs, length_name
from .features import check_features, history_of_first_row
from .layers import (MLP, FeatureEmbedding, SimTierHistogram, cosine_similarity, fm_interaction, length_mask,
                     linear, load_linear, safe_ids)


def masked_mean(x, mask):
    """[B, L, d], bool [B, L] -> [B, d]; zeros for an empty history."""
    m = tf.cast(mask, x.dtype)[..., None]
    return tf.reduce_sum(x * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


class DeepFM(tf.keras.Model):
    config_class = DeepFMConfig

    def __init__(self, config: DeepFMConfig, inputs: ModelInputs, **kwargs):
        super().__init__(**kwargs)
        if config.sequence_pooling not in ("mean", "none"):
            raise ConfigError(f"sequence_pooling must be 'mean' or 'none', got {config.sequence_pooling!r}")
        self.config, self.inputs = config, inputs
        k = config.embed_dim
        self.embedding = FeatureEmbedding(
            inputs, k, use_item_id=config.use_item_id, item_field=config.item_field,
            moon_proj_dim=k if config.use_moon else None, init_std=config.init_std, sequence_groups=True)
        emb = self.embedding
        self.use_sequences = config.sequence_pooling == "mean"
        pooled = len(emb.sequences) + sum(len(g) for g in emb.groups.values())
        n_fields = len(emb.fields) + (pooled if self.use_sequences else 0) + (2 if config.use_moon else 0)
        if n_fields == 0:
            raise ConfigError("DeepFM has no fields to interact")
        self.linear = {n: self.add_weight(name=f"linear_{n}", shape=(emb.vocab[n], 1), initializer="zeros")
                       for n in emb.fields}
        self.dense_linear = linear(len(inputs.dense), 1, name="dense_linear") if inputs.dense else None
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros")
        self.sim_hist = SimTierHistogram(config.sim_bins) if config.use_moon and config.sim_histogram else None
        width = n_fields * k + len(inputs.dense) + (self.sim_hist.out_dim if self.sim_hist is not None else 0)
        self.dnn = MLP(width, config.dnn_hidden, act=config.dnn_act, dropout=config.dropout, out_dim=1)

    def _linear_term(self, name, ids):
        ids = safe_ids(ids, self.embedding.vocab[name])
        # id 0 is torch's padding_idx: zero weight, no gradient
        return tf.gather(self.linear[name], ids)[:, 0] * tf.cast(ids > 0, tf.float32)

    def call(self, features, training=None, shared_history: bool = False):
        """-> logits [B]. `shared_history`: every row has row 0's history (one request), pooled
        once and broadcast (torch: CTRBatch.shared_history)."""
        check_features(features, self.inputs)
        emb = self.embedding
        sparse = emb.sparse(features)
        fields = [sparse[n] for n in emb.fields]
        extra = []
        mask = None
        history = history_of_first_row(features, self.inputs) if shared_history else features
        shape = [tf.shape(features["hist_len"])[0], self.config.embed_dim]  # a pooled field for every row
        if self.use_sequences or self.config.use_moon:
            mask = length_mask(history["hist_len"], emb.history_width(history))
        if self.use_sequences:
            hist = emb.history(history)
            fields += [tf.broadcast_to(masked_mean(hist[s.name], mask), shape) for s in emb.sequences]
            fields += self._pooled_groups(history, shape)
        if self.config.use_moon:
            fields.append(emb.moon(features["item_emb"]))
            fields.append(tf.broadcast_to(masked_mean(emb.moon(history["hist_emb"]), mask), shape))
            if self.sim_hist is not None:
                sim = cosine_similarity(features["item_emb"], history["hist_emb"], mask)
                extra.append(self.sim_hist(sim, mask))
        stacked = tf.stack(fields, axis=1)  # [B, F, k]

        logit = self.bias + tf.add_n([self._linear_term(n, features[n]) for n in emb.fields])
        dense = [tf.cast(features[n], tf.float32)[:, None] for n in self.inputs.dense]
        if self.dense_linear is not None:
            logit = logit + tf.squeeze(self.dense_linear(tf.concat(dense, axis=1)), 1)
        logit = logit + fm_interaction(stacked)
        flat = tf.reshape(stacked, [-1, len(fields) * self.config.embed_dim])
        dnn_in = tf.concat([flat] + dense + extra, axis=1)
        return logit + tf.squeeze(self.dnn(dnn_in, training=training), 1)

    def _pooled_groups(self, history, shape) -> list:
        """Each field of the sequences besides the main one, mean-pooled over its own length."""
        out = []
        for group, sequences in self.embedding.groups.items():
            hist = self.embedding.group_history(history, group)
            for s in sequences:
                mask = length_mask(history[length_name(group)], tf.shape(hist[s.name])[1])
                out.append(tf.broadcast_to(masked_mean(hist[s.name], mask), shape))
        return out

    def embedding_tables(self) -> list:
        """The weights torch keeps in nn.Embedding: the field tables and the linear terms."""
        return list(self.embedding.tables.values()) + list(self.linear.values())

    def load_torch(self, model) -> None:
        """Copy the weights of a ctr_models.DeepFM built with the same config and inputs."""
        self.embedding.load_torch(model.embedding)
        for n, w in self.linear.items():
            w.assign(model.linear[n].weight.detach().numpy())
        if self.dense_linear is not None:
            load_linear(self.dense_linear, model.dense_linear, len(self.inputs.dense))
        self.bias.assign(model.bias.detach().numpy())
        self.dnn.load_torch(model.dnn)
