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

    def shared_first_layer(self, q, k):
        """q [B, d], one history k [n, d] -> [B, n, h]; equal to decomposed_first_layer over keys
        repeated B times, with only the q * k term paid per pair."""
        w_q, w_k, w_d, w_p = tf.split(self.first_kernel, 4, axis=0)
        c = q @ (w_q + w_d) + self.first_bias                                # [B, h]: once per target
        kk = k @ (w_k - w_d)                                                 # [n, h]: once per history item
        pair = tf.reshape(q[:, None, :] * k[None], [-1, self.dim]) @ w_p     # [B * n, h]
        return tf.reshape(pair, [tf.shape(q)[0], tf.shape(k)[0], -1]) + c[:, None, :] + kk[None]

    def _activate(self, h, training):
        """first activation + upper layers of rows [n, h] -> logits [n]."""
        act = self.first_act
        h = act(h, training=training) if isinstance(act, Dice) else act(h)
        return tf.squeeze(self.rest(h, training=training), -1)

    def scores(self, q, keys, mask, training=None, naive: bool = False):
        """Attention logits [B, L]; 0 at padding positions."""
        h = self.naive_first_layer(q, keys) if naive else self.decomposed_first_layer(q, keys)
        packed = self._activate(tf.boolean_mask(h, mask), training)          # [n_valid]
        return tf.scatter_nd(tf.where(mask), packed, tf.shape(mask, out_type=tf.int64))

    def call(self, q, keys, valid, bias=None, training=None, naive: bool = False, shared: bool = False):
        """`shared`: keys [1, L, d] and valid [1, L] are one history every target shares (one
        request), as torch's keys of batch size 1; `valid`, not `mask`: keras treats a call
        argument named mask as its own masking input."""
        if shared and not naive:
            return self._shared_call(q, keys[0], valid[0], bias, training)
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

    def _shared_call(self, q, keys, mask, bias, training):
        """One history keys [L, d] (valid: the left-aligned prefix of mask [L]) for all B targets.
        Same result as the general path; nothing is repeated per target but q * k."""
        k = keys[: tf.reduce_sum(tf.cast(mask, tf.int32))]                   # [n, d]
        h = self.shared_first_layer(q, k)                                    # [B, n, h]
        # the B * n rows the general path packs, in the same order: same Dice batch statistics
        logits = tf.reshape(self._activate(tf.reshape(h, [-1, tf.shape(h)[2]]), training), tf.shape(h)[:2])
        if bias is not None:
            logits = logits + bias[:, : tf.shape(k)[0]]
        weights = tf.nn.softmax(logits, axis=1) if self.normalization == "softmax" else logits
        return weights @ k  # an empty history pools to zeros

    def load_torch(self, module) -> None:
        self.first_kernel.assign(module.first.weight.detach().numpy().T)
        self.first_bias.assign(module.first.bias.detach().numpy())
        if hasattr(self.first_act, "load_torch"):
            self.first_act.load_torch(module.first_act)
        self.rest.load_torch(module.rest)
