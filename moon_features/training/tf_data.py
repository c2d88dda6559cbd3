"""Feast -> tf.data: the point-in-time training frames of `retrieval.training_data` as a
TFCTRDataset (batched, prefetching tf.data with the MOON gather inside the pipeline).

The frames are built by the very function the PyTorch path uses (get_historical_features ->
Arrow -> vectorised numpy columns), so the two backends train on identical rows; TensorFlow is
imported only when this module is.
"""
from __future__ import annotations

import pandas as pd
from feast import FeatureStore

from ctr_models.tf.data import TFCTRDataset

from ..spec import FeatureSpec
from .retrieval import training_data


def training_dataset(store: FeatureStore, spec: FeatureSpec, entity_rows: pd.DataFrame,
                     use_moon: bool = True) -> TFCTRDataset:
    """`.dataset(batch_size, shuffle=True, seed, epoch)` gives the tf.data.Dataset; TFTrainer takes it as is."""
    return TFCTRDataset(training_data(store, spec, entity_rows, use_moon=use_moon))
