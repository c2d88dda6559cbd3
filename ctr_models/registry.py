"""The one model registry: a model name -> its config class, torch class and TensorFlow class.

Everything that needs the list of models reads it here: artifact loading and saving (torch and
TF), the TF export, training (`moon_features.training.train`) and the CLI's --model choices.
Classes are named by dotted path and imported on first use, so reading the names costs no torch
import (the CLI builds its parser without it) and the TF classes load only where TensorFlow is
wanted: it is an optional backend.

Adding a model: write ctr_models/<name>.py (config + nn.Module, `config_class` attribute), and
optionally ctr_models/tf/<name>.py, then add one ModelEntry below.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from .config import ConfigError


class UnknownModelError(ConfigError):
    """A model name (a CLI choice, an artifact's model_type) that is not in the registry."""


def _load(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ModelEntry:
    name: str           # = the config's model_type, recorded in artifacts
    config: str         # "module:ConfigClass"
    torch: str          # "module:nn.Module subclass"
    tf: str | None = None  # "module:keras.Model subclass" of the TF mirror, None if there is none

    def config_class(self):
        return _load(self.config)

    def torch_class(self):
        return _load(self.torch)

    def tf_class(self):
        """The TF mirror's class; importing it imports TensorFlow (ctr_models.tf)."""
        if self.tf is None:
            raise UnknownModelError(f"model {self.name!r} has no TensorFlow version")
        return _load(self.tf)


MODELS: dict[str, ModelEntry] = {e.name: e for e in (
    ModelEntry("din", config="ctr_models.din:DINConfig", torch="ctr_models.din:DIN", tf="ctr_models.tf.din:DIN"),
    ModelEntry("deepfm", config="ctr_models.deepfm:DeepFMConfig", torch="ctr_models.deepfm:DeepFM",
               tf="ctr_models.tf.deepfm:DeepFM"),
)}

# How an artifact folder of each backend (config.json "backend") is loaded: "module:function(path, inputs)".
ARTIFACT_LOADERS = {"torch": "ctr_models.artifact:load_torch_artifact",
                    "tensorflow": "ctr_models.tf.serving:load_artifact"}


def model_names() -> list[str]:
    return sorted(MODELS)


def get_model(name: str) -> ModelEntry:
    entry = MODELS.get(name)
    if entry is None:
        raise UnknownModelError(f"unknown model {name!r}; choose one of {model_names()}")
    return entry


def artifact_loader(backend: str):
    path = ARTIFACT_LOADERS.get(backend)
    if path is None:
        raise UnknownModelError(f"unknown artifact backend {backend!r}; known: {sorted(ARTIFACT_LOADERS)}")
    return _load(path)
