"""The hook for moon_features.serving: load a TF artifact so CTRScorer can use it like a torch one.

    from ctr_models.tf.serving import is_tf_artifact, load_artifact, artifact_files
    artifact = load_artifact(model_dir)            # ctr_models.artifact.ModelArtifact
    logits = artifact.model(batch)                 # CTRBatch -> torch float32 [B], like an nn.Module
    probs = predict(artifact, batch)               # or numpy probabilities directly

`artifact.model` is a SavedModelRanker: it duck-types the part of nn.Module the scorer uses
(`eval()`, `__call__(CTRBatch)`, `state_dict()`, `.config.model_type`, `.inputs`), so
`CTRScorer(store, load_artifact(dir))` works unchanged (tests/test_tf_serving.py); the scorer's
batches have `shared_history`, so they run the SavedModel's "score_request" signature.
`is_tf_artifact` reads only config.json; call it before importing this module if TensorFlow may
be absent.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..artifact import ModelArtifact
from ..inputs import ModelInputs
from .export import BACKEND, TFArtifact, load_tf_artifact


def is_tf_artifact(path: str | Path) -> bool:
    cfg = Path(path) / "config.json"
    return cfg.exists() and json.loads(cfg.read_text()).get("backend") == BACKEND


def artifact_files(path: str | Path) -> list[Path]:
    """Every file of the artifact in a stable order (what artifact_version should hash)."""
    path = Path(path)
    return [path / "config.json"] + sorted(p for p in (path / "saved_model").rglob("*") if p.is_file())


class SavedModelRanker:
    """A loaded SavedModel behind the calling convention of a ctr_models torch model."""

    def __init__(self, tf_artifact: TFArtifact):
        self.tf_artifact = tf_artifact
        self.config = tf_artifact.config
        self.inputs = tf_artifact.inputs

    def eval(self) -> "SavedModelRanker":
        return self  # a SavedModel signature always runs in inference mode

    def __call__(self, batch) -> torch.Tensor:
        """CTRBatch (or dict of arrays) -> logits, torch float32 [B]."""
        return torch.from_numpy(self.tf_artifact.logits(batch))

    def predict(self, batch) -> np.ndarray:
        return self.tf_artifact.predict(batch)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The SavedModel's variables (what CTRScorer hashes into a model version when it is handed
        a loaded artifact instead of a folder)."""
        loaded = self.tf_artifact.loaded
        return {f"{i:04d}.{v.name}": torch.from_numpy(np.asarray(v.numpy())) for i, v in enumerate(loaded.variables_)}


def load_artifact(path: str | Path, inputs: ModelInputs | None = None) -> ModelArtifact:
    """A TF artifact as ctr_models.artifact.ModelArtifact (model = SavedModelRanker)."""
    art = load_tf_artifact(path, inputs)
    return ModelArtifact(model=SavedModelRanker(art), inputs=art.inputs, extra=art.extra, metrics=art.metrics)


def predict(artifact, batch) -> np.ndarray:
    """Probabilities float32 [B] from a loaded artifact (TF or torch) and a CTRBatch or arrays dict."""
    model = artifact.model if isinstance(artifact, ModelArtifact) else artifact
    if isinstance(model, (SavedModelRanker, TFArtifact)):
        return model.predict(batch)
    with torch.inference_mode():
        return torch.sigmoid(model(batch)).numpy()
