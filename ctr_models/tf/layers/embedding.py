"""Embedding lookups shared by the Keras models, as ctr_models.layers.embedding.

One table per sparse field, sequences read their target field's table, ids outside
[0, vocab) read the padding row 0, and the frozen MOON vectors enter through a trainable
projection. torch's padding_idx keeps row 0 at zero and out of the gradient; here the lookup of
id 0 is multiplied by 0, which does the same (zero output, zero gradient for row 0).
"""
from __future__ import annotations

import tensorflow as tf

from ...inputs import ModelInputs
from .mlp import linear, load_linear


def safe_ids(ids, vocab_size: int):
    return tf.where((ids >= 0) & (ids < vocab_size), ids, tf.zeros_like(ids))


def padded_normal(std: float):
    """N(0, std) with row 0 (the padding id) zero, like torch's nn.init.normal_ + zeroing row 0."""
    def init(shape, dtype=None):
        w = tf.random.normal(shape, stddev=std, dtype=dtype or tf.float32)
        return tf.concat([tf.zeros_like(w[:1]), w[1:]], axis=0)
    return init


class FeatureEmbedding(tf.keras.layers.Layer):
    def __init__(self, inputs: ModelInputs, dim: int, *, use_item_id: bool = True, item_field: str = "item_id",
                 moon_proj_dim: int | None = None, init_std: float = 1e-4, sequence_groups: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not sequence_groups:  # as torch: a model that reads one history refuses several
            inputs.require_one_sequence("this TensorFlow model")
        self.inputs, self.dim, self.item_field = inputs, dim, item_field
        names = [f.name for f in inputs.sparse]
        self.fields = [n for n in names if use_item_id or n != item_field]
        self.sequences = [s for s in inputs.sequences if s.target in self.fields and not s.group]
        self.groups = {g: [s for s in inputs.group_sequences(g) if s.target in self.fields]
                       for g in inputs.sequence_groups}
        self.vocab = {f.name: f.vocab_size for f in inputs.sparse}
        self.tables = {n: self.add_weight(name=f"table_{n}", shape=(self.vocab[n], dim),
                                          initializer=padded_normal(init_std)) for n in self.fields}
        self.moon = None
        if moon_proj_dim:
            if inputs.moon_dim is None:
                raise ValueError("the model config asks for MOON embeddings but ModelInputs.moon_dim is None")
            self.moon = linear(inputs.moon_dim, moon_proj_dim, name="moon_proj")
        self.moon_dim = moon_proj_dim or 0

    @property
    def item_dim(self) -> int:
        return self.dim * len(self.sequences) + self.moon_dim

    def lookup(self, name: str, ids):
        ids = safe_ids(ids, self.vocab[name])
        return tf.gather(self.tables[name], ids) * tf.cast(ids > 0, tf.float32)[..., None]

    def sparse(self, features) -> dict:
        return {n: self.lookup(n, features[n]) for n in self.fields}

    def history(self, features) -> dict:
        """Sequence name -> [B, L, dim], through the target field's table."""
        return {s.name: self.lookup(s.target, features[s.name]) for s in self.sequences}

    def group_history(self, features, group: str) -> dict:
        """A sequence group's fields -> [B, L_group, dim], through their target fields' tables."""
        return {s.name: self.lookup(s.target, features[s.name]) for s in self.groups[group]}

    def target(self, features, sparse: dict):
        """q [B, item_dim]: the target item in the layout of a history position."""
        q = [sparse[s.target] for s in self.sequences]
        if self.moon is not None:
            q.append(self.moon(features["item_emb"]))
        return tf.concat(q, axis=-1)

    def history_keys(self, features):
        """keys [B, L, item_dim]: every history position, aligned with `target`."""
        k = list(self.history(features).values())
        if self.moon is not None:
            k.append(self.moon(features["hist_emb"]))
        return tf.concat(k, axis=-1)

    def history_width(self, features):
        main = [s for s in self.inputs.sequences if not s.group]
        if main:
            return tf.shape(features[main[0].name])[1]
        return tf.shape(features["hist_emb"])[1] if "hist_emb" in features else tf.constant(0)

    def load_torch(self, module) -> None:
        for n in self.fields:
            self.tables[n].assign(module.tables[n].weight.detach().numpy())
        if self.moon is not None:
            load_linear(self.moon, module.moon, self.inputs.moon_dim)


def length_mask(hist_len, max_len):
    """[B] lengths -> bool [B, L], True at the valid (left-aligned) positions."""
    positions = tf.range(max_len, dtype=hist_len.dtype)
    return positions[None, :] < tf.maximum(hist_len, 0)[:, None]


__all__ = ["FeatureEmbedding", "safe_ids", "length_mask", "padded_normal"]
