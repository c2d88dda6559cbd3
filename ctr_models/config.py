"""Base class of the model configs: plain dataclasses that round-trip through JSON."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


class ConfigError(ValueError):
    """A model config is inconsistent with itself or with the ModelInputs it is built for."""


@dataclass
class ModelConfig:
    model_type = "base"  # class attribute, not a field: names the model in an artifact

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{cls.__name__} has no option(s) {sorted(unknown)}; known: {sorted(known)}")
        # JSON turns tuples into lists; the configs use tuples for hidden sizes
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
