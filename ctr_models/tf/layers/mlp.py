"""Dense layers initialised as torch's nn.Linear, PReLU, the activation factory and MLP.

torch's Linear draws weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)); keras' Dense
defaults (Glorot, zero bias) would start the two backends from different distributions and
blur the parity comparison, so every dense layer here uses torch's.
"""
from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

from .dice import Dice


def linear(in_dim: int, out_dim: int, name: str | None = None) -> tf.keras.layers.Dense:
    bound = 1.0 / math.sqrt(in_dim) if in_dim else 0.0
    return tf.keras.layers.Dense(
        out_dim, name=name,
        kernel_initializer=tf.keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        bias_initializer=tf.keras.initializers.RandomUniform(-bound, bound))


def load_linear(dense: tf.keras.layers.Dense, module, in_dim: int) -> None:
    """Copy a torch nn.Linear (weight [out, in]) into a keras Dense (kernel [in, out])."""
    if not dense.built:
        dense.build((None, in_dim))
    dense.kernel.assign(module.weight.detach().numpy().T)
    dense.bias.assign(module.bias.detach().numpy())


class PReLU(tf.keras.layers.Layer):
    """One slope per unit of the last dimension, as ctr_models.layers.mlp.PReLU."""

    def __init__(self, num_features: int, init: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.alpha = self.add_weight(name="alpha", shape=(num_features,),
                                     initializer=tf.keras.initializers.Constant(init))

    def call(self, x):
        return tf.where(x >= 0, x, self.alpha * x)

    def load_torch(self, module) -> None:
        self.alpha.assign(module.alpha.detach().numpy())


def activation(name: str, width: int) -> tf.keras.layers.Layer:
    name = name.lower()
    if name == "dice":
        return Dice(width)
    if name == "prelu":
        return PReLU(width)
    if name == "relu":
        return tf.keras.layers.ReLU()
    if name == "sigmoid":
        return tf.keras.layers.Activation("sigmoid")
    raise ValueError(f"unknown activation {name!r}; use one of dice, prelu, relu, sigmoid")


class MLP(tf.keras.layers.Layer):
    """in_dim -> hidden[0] -> ... -> hidden[-1] (-> out_dim if given, without activation)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], act: str = "relu", dropout: float = 0.0,
                 out_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.blocks = []  # (dense, activation, dropout | None, in_dim)
        width = in_dim
        for h in hidden:
            drop = tf.keras.layers.Dropout(dropout) if dropout > 0 else None
            self.blocks.append((linear(width, h), activation(act, h), drop, width))
            width = h
        self.out = linear(width, out_dim) if out_dim is not None else None
        self.out_in_dim = width
        self.out_dim = out_dim if out_dim is not None else width

    def call(self, x, training=None):
        for dense, act, drop, _ in self.blocks:
            x = dense(x)
            x = act(x, training=training) if isinstance(act, Dice) else act(x)
            if drop is not None:
                x = drop(x, training=training)
        return self.out(x) if self.out is not None else x

    def load_torch(self, module) -> None:
        """module: the torch MLP (an nn.Sequential of Linear, activation[, Dropout], ..., Linear).
        Its parts are told apart by class name: the TF mirror imports no torch."""
        kind = [type(m).__name__ for m in module]
        linears = [m for m, k in zip(module, kind) if k == "Linear"]
        acts = [m for m, k in zip(module, kind) if k not in ("Linear", "Dropout")]
        for (dense, act, _, width), lin, tact in zip(self.blocks, linears, acts):
            load_linear(dense, lin, width)
            if hasattr(act, "load_torch"):
                act.load_torch(tact)
        if self.out is not None:
            load_linear(self.out, linears[-1], self.out_in_dim)
