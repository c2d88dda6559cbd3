"""ctr_models: pure-PyTorch CTR models (DIN, DeepFM) over a CTRBatch, with MOON embeddings.

The package itself is light: `ctr_models.inputs` (what the feature spec derives, and what
`feast apply` reaches through moon_features.spec) must import without torch. The public names
below load their module, and so torch, on first use (PEP 562 module __getattr__).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "artifact": ("ArtifactError", "ModelArtifact", "SpecMismatchError", "from_pretrained", "save_pretrained"),
    "batch": ("BatchShapeError", "CTRBatch"),
    "config": ("ConfigError",),
    "data": ("CTRData", "DataError"),
    "deepfm": ("DeepFM", "DeepFMConfig"),
    "din": ("DIN", "DINConfig"),
    "inputs": ("ModelInputs", "SequenceField", "SparseField"),
    "trainer": ("FitResult", "Trainer", "TrainerConfig", "seed_everything"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'ctr_models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
