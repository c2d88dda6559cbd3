"""Dice (DIN, section 4.3) in Keras, with torch BatchNorm1d's exact statistics.

Mirrors ctr_models.layers.dice: p = sigmoid((x - mean) / sqrt(var + eps)) with batch statistics
in training (biased variance) and running statistics otherwise (momentum 0.1, updated with the
unbiased variance), no affine part; out = x * (alpha + p * (1 - alpha)). Written out instead of
using keras' BatchNormalization because that one updates its running variance differently and
cannot fall back to running statistics for a batch of one row, which the packed attention
produces (a batch whose histories hold a single valid position).
"""
from __future__ import annotations

import tensorflow as tf


class Dice(tf.keras.layers.Layer):
    def __init__(self, num_features: int, eps: float = 1e-8, momentum: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.alpha = self.add_weight(name="alpha", shape=(num_features,), initializer="zeros")
        self.running_mean = self.add_weight(name="running_mean", shape=(num_features,), initializer="zeros",
                                            trainable=False)
        self.running_var = self.add_weight(name="running_var", shape=(num_features,), initializer="ones",
                                           trainable=False)

    def call(self, x, training=None):
        shape = tf.shape(x)
        flat = tf.reshape(x, [-1, self.num_features])
        if training:
            n = tf.shape(flat)[0]
            mean, var = tf.nn.moments(flat, axes=[0])
            enough = n >= 2  # batch statistics need >= 2 rows; otherwise use the running ones
            mean = tf.where(enough, mean, self.running_mean)
            var = tf.where(enough, var, self.running_var)
            nf = tf.cast(n, flat.dtype)
            unbiased = var * nf / tf.maximum(nf - 1.0, 1.0)
            m = self.momentum
            self.running_mean.assign(tf.where(enough, (1 - m) * self.running_mean + m * mean, self.running_mean))
            self.running_var.assign(tf.where(enough, (1 - m) * self.running_var + m * unbiased, self.running_var))
        else:
            mean, var = self.running_mean, self.running_var
        p = tf.sigmoid((flat - mean) * tf.math.rsqrt(var + self.eps))
        return tf.reshape(flat * (self.alpha + p * (1.0 - self.alpha)), shape)

    def load_torch(self, module) -> None:
        self.alpha.assign(module.alpha.detach().numpy())
        self.running_mean.assign(module.bn.running_mean.numpy())
        self.running_var.assign(module.bn.running_var.numpy())
