"""The TF Recommenders wrapper: a ranker (DIN / DeepFM) computes logits, a Ranking task computes
the loss (binary cross-entropy on logits) and the metrics (AUC), as the TFRS guides split them.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs


class RankingModel(tfrs.models.Model):
    """features dict (with "label") -> loss; `call` returns the ranker's logits [B]."""

    def __init__(self, ranker: tf.keras.Model, label_key: str = "label", **kwargs):
        super().__init__(**kwargs)
        self.ranker = ranker
        self.label_key = label_key
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")])

    def call(self, features, training=False):
        return self.ranker(features, training=training)

    def compute_loss(self, features, training=False):
        if self.label_key not in features:
            raise KeyError(f"training features need a {self.label_key!r} tensor; have {sorted(features)}")
        logits = self.ranker(features, training=training)
        # [B, 1]: keras' cross-entropy averages over the last axis before reducing the batch
        return self.task(labels=features[self.label_key][:, None], predictions=logits[:, None], training=training)
