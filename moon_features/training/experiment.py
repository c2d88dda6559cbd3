"""Experiments as files: a model and its trainer's hyper-parameters in YAML, not in code edits.

    # experiments/din.yaml
    model: din            # a name of ctr_models.registry
    use_moon: true
    model_config: {}      # overrides of the model config's defaults (DINConfig, DeepFMConfig)
    trainer: {epochs: 5}  # overrides of TrainerConfig's defaults

Only what differs from the dataclass defaults is written down: the defaults are read from the
config classes at run time, so a recipe never carries a stale copy of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from ctr_models.registry import MODELS, model_names
from ctr_models.trainer import TrainerConfig

from ..errors import MoonFeaturesError

KEYS = ("model", "use_moon", "model_config", "trainer")


class ExperimentError(MoonFeaturesError, ValueError):
    """An experiment file names an unknown model or option; the message lists the known ones."""


def _check_options(what: str, given: dict, config_class) -> None:
    if not isinstance(given, dict):
        raise ExperimentError(f"{what} must be a mapping of option: value, got {given!r}")
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ExperimentError(f"{what}: {config_class.__name__} has no option(s) {unknown}; known: {sorted(known)}")


@dataclass
class Experiment:
    model: str = "din"
    use_moon: bool = True
    model_config: dict = field(default_factory=dict)
    trainer: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ExperimentError(f"unknown model {self.model!r}; choose one of {model_names()}")
        _check_options("model_config", self.model_config, MODELS[self.model].config_class())
        if "use_moon" in self.model_config:
            raise ExperimentError("use_moon is a top-level key of the experiment (it also picks the features), "
                                  "not a model_config option")
        _check_options("trainer", self.trainer, TrainerConfig)

    @classmethod
    def load(cls, path: str | Path) -> "Experiment":
        path = Path(path)
        if not path.exists():
            raise ExperimentError(f"experiment file {path} does not exist (recipes: experiments/*.yaml)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ExperimentError(f"{path} is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ExperimentError(f"{path} must be a mapping with keys {list(KEYS)}")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise ExperimentError(f"{path}: unknown key(s) {unknown}; an experiment has {list(KEYS)}")
        return cls(**{k: v for k, v in data.items() if v is not None})

    def trainer_config(self, **overrides) -> TrainerConfig:
        """TrainerConfig from its defaults, this experiment's values, then `overrides` (None = not given)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        _check_options("trainer overrides", given, TrainerConfig)
        return TrainerConfig(**{**self.trainer, **given})
