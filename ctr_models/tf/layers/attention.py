"""DIN target attention with the decomposed first layer, as ctr_models.layers.attention.

W [q, k, q-k, q*k] + b = (W_q + W_d) q + b + k^T ((W_k - W_d) + diag(q) W_p): c(q) and A(q) are
computed once per target, each (target, history item) pair then costs one d x h product and the
[B, L, 4d] concatenation is never built. `naive_first_layer` keeps the textbook form (a test
checks both agree). Only the valid positions go through the activation and the upper layers
(packed with the mask), which also keeps padding out of Dice's batch statistics, as in torch.
"""
from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

from .dice import Dice
from .mlp import MLP, activation


class TargetAttention(tf.keras.layers.Layer):
    """q [B, d], keys [B, L, d], mask bool [B, L] (+ bias [B, L]) -> pooled interest [B, d]."""

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 16), act: str = "dice",
                 normalization: str = "none", **kwargs):
        super().__init__(**kwargs)
        if not hidden:
            raise ValueError("TargetAttention needs at least one hidden layer")
        if normalization not in ("none", "softmax"):
            raise ValueError(f"normalization must be 'none' or 'softmax', got {normalization!r}")
        self.dim, self.normalization = dim, normalization
        bound = 1.0 / math.sqrt(4 * dim)  # torch nn.Linear(4d, h) initialisation
        # one initializer instance per weight: a reused unseeded keras initializer repeats its draws
        self.first_kernel = self.add_weight(name="first_kernel", shape=(4 * dim, hidden[0]),
                                            initializer=tf.keras.initializers.RandomUniform(-bound, bound))
        self.first_bias = self.add_weight(name="first_bias", shape=(hidden[0],),
                                          initializer=tf.keras.initializers.RandomUniform(-bound, bound))
        self.first_act = activation(act, hidden[0])
        self.rest = MLP(hidden[0], hidden[1:], act=act, out_dim=1)

    def naive_first_layer(self, q, keys):
        qe = tf.broadcast_to(q[:, None, :], tf.shape(keys))
        return tf.concat([qe, keys, qe - keys, qe * keys], axis=-1) @ self.first_kernel + self.first_bias

    def decomposed_first_layer(self, q, keys):
        w_q, w_k, w_d, w_p = tf.split(self.first_kernel, 4, axis=0)          # each [d, h]
        c = q @ (w_q + w_d) + self.first_bias                                # [B, h]
        a = (w_k - w_d)[None] + q[:, :, None] * w_p[None]                    # [B, d, h]
        return c[:, None, :] + tf.matmul(keys, a)                            # [B, L, h]

    def scores(self, q, keys, mask, training=None, naive: bool = False):
        """Attention logits [B, L]; 0 at padding positions."""
        h = self.naive_first_layer(q, keys) if naive else self.decomposed_first_layer(q, keys)
        packed = tf.boolean_mask(h, mask)                                    # [n_valid, h]
        act = self.first_act
        packed = act(packed, training=training) if isinstance(act, Dice) else act(packed)
        packed = tf.squeeze(self.rest(packed, training=training), -1)       # [n_valid]
        return tf.scatter_nd(tf.where(mask), packed, tf.shape(mask, out_type=tf.int64))

    def call(self, q, keys, valid, bias=None, training=None, naive: bool = False):
        # `valid`, not `mask`: keras treats a call argument named mask as its own masking input
        mask = valid
        logits = self.scores(q, keys, mask, training=training, naive=naive)
        if bias is not None:
            logits = logits + bias
        if self.normalization == "softmax":
            logits = tf.where(mask, logits, tf.fill(tf.shape(logits), -math.inf))
            # a row without valid positions is all -inf -> NaN: an empty history pools to zeros
            weights = tf.nn.softmax(logits, axis=1)
            weights = tf.where(tf.math.is_nan(weights), tf.zeros_like(weights), weights)
        else:
            weights = logits * tf.cast(mask, logits.dtype)
        return tf.einsum("bl,bld->bd", weights, keys)

    def load_torch(self, module) -> None:
        self.first_kernel.assign(module.first.weight.detach().numpy().T)
        self.first_bias.assign(module.first.bias.detach().numpy())
        if hasattr(self.first_act, "load_torch"):
            self.first_act.load_torch(module.first_act)
        self.rest.load_torch(module.rest)
