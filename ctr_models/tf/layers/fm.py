"""Factorization-machine second-order interaction, as ctr_models.layers.fm."""
from __future__ import annotations

import tensorflow as tf


def fm_interaction(fields: tf.Tensor) -> tf.Tensor:
    """[B, F, k] -> [B]: sum_{i<j} <v_i, v_j> = 0.5 * sum_k ((sum_i v)^2 - sum_i v^2)."""
    square_of_sum = tf.square(tf.reduce_sum(fields, axis=1))
    sum_of_square = tf.reduce_sum(tf.square(fields), axis=1)
    return 0.5 * tf.reduce_sum(square_of_sum - sum_of_square, axis=1)
