"""TensorFlow process settings: legacy Keras check, thread pools, seeding."""
from __future__ import annotations

import random

import numpy as np
import tensorflow as tf


class LegacyKerasError(RuntimeError):
    """tf.keras is Keras 3: TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set."""


if not tf.keras.__name__.startswith("tf_keras"):
    raise LegacyKerasError(
        f"tf.keras is {tf.keras.__name__} (Keras 3), but TF Recommenders needs tf-keras: "
        "import ctr_models.tf before anything imports tensorflow, or export TF_USE_LEGACY_KERAS=1; "
        "and install the extra: pip install 'moon-features[tf]'")


_THREADS: int | None = None


def configured_threads() -> int | None:
    """The n of the last configure_threads(n) call (tf.data pipelines size their pools with it)."""
    return _THREADS


def configure_threads(n: int | None) -> bool:
    """Use n intra-op and n inter-op threads (None: TF's default, all cores); tf.data pipelines
    built by TFCTRDataset afterwards use a private pool of n threads too.

    TF fixes its op thread pools when the runtime starts (the first op); afterwards this cannot
    change them and returns False, so call it right after importing ctr_models.tf.
    """
    global _THREADS
    if not n:
        return True
    _THREADS = int(n)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(n))
        tf.config.threading.set_inter_op_parallelism_threads(int(n))
        return True
    except RuntimeError:  # "cannot be modified after initialization"
        return False


def seed_everything(seed: int) -> None:
    """Seed python, numpy and TF; call it before building a model so its init is seeded."""
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
