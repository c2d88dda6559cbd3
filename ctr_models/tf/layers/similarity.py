"""Cosine similarity of frozen MOON vectors, SimTier histogram, MUSE-style fusion, similarity heads.

Mirrors ctr_models.layers.similarity (see its docstring for why these signals help cold items).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


def cosine_similarity(item_emb, hist_emb, mask, eps: float = 1e-8):
    """[B, D], [B or 1, L, D], bool [B or 1, L] -> [B, L]; 0 at padding and for all-zero (unknown)
    vectors. A history of batch size 1 is shared by every target (one request), as in torch."""
    q = item_emb / tf.maximum(tf.norm(item_emb, axis=-1, keepdims=True), eps)
    k = hist_emb / tf.maximum(tf.norm(hist_emb, axis=-1, keepdims=True), eps)
    sim = tf.squeeze(tf.matmul(q[:, None, :], k, transpose_b=True), 1)  # batch dims broadcast: [B, L]
    return sim * tf.cast(mask, q.dtype)


class SimTierHistogram(tf.keras.layers.Layer):
    """[B, L] similarities + mask -> [B, n_bins + 2]: tier fractions, mean and max similarity."""

    def __init__(self, n_bins: int = 10, **kwargs):
        super().__init__(**kwargs)
        if n_bins < 1:
            raise ValueError("n_bins must be >= 1")
        self.n_bins = n_bins
        self.edges = tf.constant(np.linspace(-1.0, 1.0, n_bins + 1, dtype=np.float32)[1:-1])

    @property
    def out_dim(self) -> int:
        return self.n_bins + 2

    def call(self, sim, valid):
        # not named mask: keras treats a call argument named mask as its own masking input; a shared
        # history's mask is [1, L]
        mask = tf.broadcast_to(valid, tf.shape(sim))
        m = tf.cast(mask, sim.dtype)
        n = tf.reduce_sum(m, axis=1, keepdims=True)
        x = tf.clip_by_value(sim, -1.0, 1.0)
        # number of inner edges strictly below x == torch.bucketize(x, edges, right=False)
        tier = tf.reduce_sum(tf.cast(x[..., None] > self.edges, tf.int32), axis=-1)
        counts = tf.reduce_sum(tf.one_hot(tier, self.n_bins, dtype=sim.dtype) * m[..., None], axis=1)
        denom = tf.maximum(n, 1.0)
        frac = counts / denom
        mean = tf.reduce_sum(sim * m, axis=1, keepdims=True) / denom
        masked = tf.where(mask, sim, -tf.ones_like(sim))
        mx = tf.cond(tf.shape(sim)[1] > 0, lambda: tf.reduce_max(masked, axis=1, keepdims=True), lambda: mean)
        mx = tf.where(n > 0, mx, tf.zeros_like(mx))
        return tf.concat([frac, mean, mx], axis=1)


class SimilarityFusion(tf.keras.layers.Layer):
    """MUSE-style: attention logit += scale * sim + shift, scale (from 1) and shift learned."""

    def __init__(self, init_scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = self.add_weight(name="scale", shape=(), initializer=tf.keras.initializers.Constant(init_scale))
        self.shift = self.add_weight(name="shift", shape=(), initializer="zeros")

    def call(self, sim):
        return self.scale * sim + self.shift

    def load_torch(self, module) -> None:
        self.scale.assign(float(module.scale.detach()))
        self.shift.assign(float(module.shift.detach()))


class SimilarityHeads(tf.keras.layers.Layer):
    """Per learned head, the mean and max cosine of the target to the valid history -> [B, 2H]
    (ctr_models.layers.SimilarityHeads: a bias-free projection, so unknown vectors stay zero)."""

    def __init__(self, moon_dim: int, heads: int, head_dim: int, eps: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        if heads < 1 or head_dim < 1:
            raise ValueError("SimilarityHeads needs heads >= 1 and head_dim >= 1")
        self.heads, self.head_dim, self.eps = heads, head_dim, eps
        bound = 1.0 / math.sqrt(moon_dim)  # torch nn.Linear's initialisation
        self.proj = self.add_weight(name="proj", shape=(moon_dim, heads * head_dim),
                                    initializer=tf.keras.initializers.RandomUniform(-bound, bound))

    @property
    def out_dim(self) -> int:
        return 2 * self.heads

    def unit(self, emb):
        """[..., D] -> [..., H, head_dim], each head over its norm."""
        z = tf.matmul(emb, self.proj)
        z = tf.reshape(z, tf.concat([tf.shape(z)[:-1], [self.heads, self.head_dim]], axis=0))
        return z / tf.maximum(tf.norm(z, axis=-1, keepdims=True), self.eps)

    def call(self, item_emb, hist_emb, valid):
        q, k = self.unit(item_emb), self.unit(hist_emb)     # [B, H, d], [B or 1, L, H, d]
        sim = tf.einsum("bhd,blhd->bhl", q, tf.broadcast_to(k, tf.concat([tf.shape(q)[:1], tf.shape(k)[1:]], 0)))
        valid = tf.broadcast_to(valid[:, None, :], tf.shape(sim))
        m = tf.cast(valid, sim.dtype)
        n = tf.reduce_sum(m, axis=2)
        mean = tf.reduce_sum(sim * m, axis=2) / tf.maximum(n, 1.0)
        masked = tf.where(valid, sim, -tf.ones_like(sim))
        mx = tf.cond(tf.shape(sim)[2] > 0, lambda: tf.reduce_max(masked, axis=2), lambda: mean)
        return tf.concat([mean, tf.where(n > 0, mx, tf.zeros_like(mx))], axis=1)

    def load_torch(self, module) -> None:
        self.proj.assign(module.proj.weight.detach().numpy().T)
