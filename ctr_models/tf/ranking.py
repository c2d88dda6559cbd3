"""The TF Recommenders wrapper: a ranker (DIN / DeepFM) computes logits, a Ranking task computes
the loss (binary cross-entropy on logits) and the metrics (AUC), as the TFRS guides split them.

Weight decay mirrors torch Adam's `weight_decay` (an L2 term added to the gradient, not AdamW's
decoupled decay): a regularization loss 0.5 * rate * ||w||^2 has exactly the gradient rate * w,
and TFRS reports it apart from the task loss, as torch's trainer reports the loss without it.
Embedding tables get weight_decay + embedding_weight_decay (ctr_models.trainer.Trainer.param_groups).
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs


class RankingModel(tfrs.models.Model):
    """features dict (with "label") -> loss; `call` returns the ranker's logits [B]."""

    def __init__(self, ranker: tf.keras.Model, label_key: str = "label", weight_decay: float = 0.0,
                 embedding_weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.ranker = ranker
        self.label_key = label_key
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")])
        self.weight_decay, self.embedding_weight_decay = float(weight_decay), float(embedding_weight_decay)
        if self.weight_decay or self.embedding_weight_decay:
            self.add_loss(self.l2_penalty)  # a callable: evaluated on every training step

    def l2_penalty(self):
        """sum over trainable weights of 0.5 * rate * ||w||^2 (rate: see the module doc)."""
        tables = {v.ref() for v in self.ranker.embedding_tables()}
        terms = []
        for v in self.ranker.trainable_variables:
            rate = self.weight_decay + (self.embedding_weight_decay if v.ref() in tables else 0.0)
            if rate:
                terms.append(0.5 * rate * tf.reduce_sum(tf.square(v)))
        return tf.add_n(terms) if terms else tf.constant(0.0)

    def call(self, features, training=False):
        return self.ranker(features, training=training)

    def compute_loss(self, features, training=False):
        if self.label_key not in features:
            raise KeyError(f"training features need a {self.label_key!r} tensor; have {sorted(features)}")
        logits = self.ranker(features, training=training)
        # [B, 1]: keras' cross-entropy averages over the last axis before reducing the batch
        return self.task(labels=features[self.label_key][:, None], predictions=logits[:, None], training=training)
