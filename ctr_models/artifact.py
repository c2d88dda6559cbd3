"""save_pretrained / from_pretrained: a folder with everything needed to use a trained model.

    <dir>/config.json   {"format_version", "model_type", "config", "inputs", "extra", "metrics"}
    <dir>/model.pt      the state dict

`inputs` is the ModelInputs the model was trained with; `extra` is opaque to ctr_models (the
caller records e.g. the Feast feature service and the embedding version there). Loading it
against different inputs is a SpecMismatchError, not a silent shape error at scoring time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .inputs import ModelInputs
from .registry import MODELS, artifact_loader

FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """The artifact folder is missing, incomplete or of an unknown format / model type."""


class SpecMismatchError(ValueError):
    """The artifact was trained with different ModelInputs than the ones it is loaded against."""


@dataclass
class ModelArtifact:
    model: nn.Module
    inputs: ModelInputs
    extra: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


def save_pretrained(model: nn.Module, path: str | Path, extra: dict | None = None,
                    metrics: dict | None = None) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model_type = model.config.model_type
    if model_type not in MODELS or MODELS[model_type].torch_class() is not type(model):
        raise ArtifactError(f"cannot save {type(model).__name__}: model_type {model_type!r} is not registered")
    meta = {"format_version": FORMAT_VERSION, "model_type": model_type, "config": model.config.to_dict(),
            "inputs": model.inputs.to_dict(), "extra": extra or {}, "metrics": metrics or {}}
    try:
        text = json.dumps(meta, indent=2, sort_keys=True)
    except TypeError as e:
        raise ArtifactError(f"extra / metrics must be JSON-serialisable: {e}") from e
    torch.save(model.state_dict(), path / "model.pt")
    (path / "config.json").write_text(text)  # written last: its presence marks a complete artifact
    return path


def artifact_files(path: str | Path) -> list[Path]:
    """Every file of an artifact folder (torch or TensorFlow) in a stable order, e.g. to hash it."""
    path = Path(path)
    return sorted(p for p in path.rglob("*") if p.is_file() and "checkpoints" not in p.relative_to(path).parts
                  and p.suffix != ".png" and p.name != "history.json")


def _diff(saved: ModelInputs, given: ModelInputs) -> str:
    a, b = saved.to_dict(), given.to_dict()
    return "; ".join(f"{k}: artifact has {a[k]!r}, given {b[k]!r}" for k in a if a[k] != b[k])


def check_meta(path: Path, meta: dict, inputs: ModelInputs | None) -> ModelInputs:
    """The recorded inputs of an artifact's config.json (either backend), checked: a known format
    and model type, and equal to `inputs` if given. ArtifactError / SpecMismatchError otherwise."""
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"artifact format {meta.get('format_version')} is not supported (expected {FORMAT_VERSION})")
    if meta.get("model_type") not in MODELS:
        raise ArtifactError(f"unknown model_type {meta.get('model_type')!r}; known: {sorted(MODELS)}")
    saved = ModelInputs.from_dict(meta["inputs"])
    if inputs is not None and inputs != saved:
        raise SpecMismatchError(f"the model at {path} was trained with different inputs: {_diff(saved, inputs)}. "
                                "Retrieve features with the feature service recorded in the artifact's extra "
                                f"({meta.get('extra', {})}) or retrain.")
    return saved


def from_pretrained(path: str | Path, inputs: ModelInputs | None = None,
                    map_location: str = "cpu") -> ModelArtifact:
    """Load an artifact of either backend; with `inputs`, first check that they equal the recorded ones.

    A TensorFlow artifact (config.json "backend": "tensorflow") loads through the registry's TF
    loader, so TensorFlow is imported only for such folders."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise ArtifactError(f"{path} is not a model artifact (no config.json); save one with save_pretrained")
    backend = json.loads(cfg_file.read_text()).get("backend", "torch")
    if backend == "torch":
        return load_torch_artifact(path, inputs, map_location)
    return artifact_loader(backend)(path, inputs)


def load_torch_artifact(path: str | Path, inputs: ModelInputs | None = None,
                        map_location: str = "cpu") -> ModelArtifact:
    path = Path(path)
    meta = json.loads((path / "config.json").read_text())
    saved = check_meta(path, meta, inputs)
    entry = MODELS[meta["model_type"]]
    model = entry.torch_class()(entry.config_class().from_dict(meta["config"]), saved)
    model.load_state_dict(torch.load(path / "model.pt", map_location=map_location, weights_only=True))
    model.eval()
    return ModelArtifact(model=model, inputs=saved, extra=meta.get("extra", {}), metrics=meta.get("metrics", {}))
