"""Serving configuration: defaults < a YAML/JSON file < MOON_SERVING_* environment < arguments.

    repo: feature_repo                 # the Feast repo (spec.json, feature_store.yaml)
    model_dir: artifacts/din_moon      # a model artifact trained from that repo
    feature_store_yaml: null           # another feature_store.yaml (e.g. the Redis one)
    host: 127.0.0.1
    port: 8000
    max_candidates: 1000               # more per request -> 413
    torch_threads: 1                   # per worker: one request at a time is fastest on 1 thread
    workers: 1                         # uvicorn worker processes

Environment: MOON_SERVING_<FIELD> (e.g. MOON_SERVING_PORT=9000); MOON_SERVING_CONFIG names the file.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .errors import SettingsError

ENV_PREFIX = "MOON_SERVING_"
CONFIG_ENV = "MOON_SERVING_CONFIG"


@dataclass(frozen=True)
class ServingSettings:
    repo: str | None = None
    model_dir: str | None = None
    feature_store_yaml: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_candidates: int = 1000
    torch_threads: int = 1
    workers: int = 1
    log_level: str = "warning"

    def __post_init__(self):
        if self.max_candidates < 1:
            raise SettingsError(f"max_candidates must be >= 1, got {self.max_candidates}")
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be in 1..65535, got {self.port}")
        if self.workers < 1 or self.torch_threads < 1:
            raise SettingsError("workers and torch_threads must be >= 1")

    def require_paths(self) -> "ServingSettings":
        missing = [n for n in ("repo", "model_dir") if not getattr(self, n)]
        if missing:
            raise SettingsError(f"serving needs {missing}: pass --repo / --model-dir, set "
                                f"{', '.join(ENV_PREFIX + m.upper() for m in missing)}, or put them in the config file")
        for name in ("repo", "model_dir"):
            if not Path(getattr(self, name)).is_dir():
                raise SettingsError(f"{name} {getattr(self, name)!r} is not a directory")
        return self

    def as_env(self) -> dict[str, str]:
        """The settings as MOON_SERVING_* variables (how uvicorn worker processes receive them)."""
        return {ENV_PREFIX + k.upper(): str(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def load(cls, config_file: str | Path | None = None, env: dict | None = None, **overrides) -> "ServingSettings":
        """Merge file, environment and overrides (None values in overrides are ignored)."""
        env = os.environ if env is None else env
        values: dict = {}
        path = config_file or env.get(CONFIG_ENV)
        if path:
            values.update(_read_file(Path(path)))
        types = {f.name: f.type for f in fields(cls)}
        for name in types:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise SettingsError(f"unknown serving settings {unknown}; known: {sorted(types)}")
        return cls(**{k: _coerce(k, v, types[k]) for k, v in values.items()})


def _read_file(path: Path) -> dict:
    if not path.exists():
        raise SettingsError(f"serving config file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path} must hold a mapping of settings, got {type(data).__name__}")
    return data


def _coerce(name: str, value, type_name: str):
    if "int" in str(type_name):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"setting {name} must be an integer, got {value!r}") from None
    return None if value in ("", "null", "None") else str(value)
