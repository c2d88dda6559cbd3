"""Serving configuration: defaults < a YAML/JSON file < MOON_SERVING_* environment < arguments.

    repo: feature_repo                 # the Feast repo (spec.json, feature_store.yaml)
    model_dir: artifacts/din_moon      # a model artifact trained from that repo
    feature_store_yaml: null           # another feature_store.yaml (e.g. the Redis one)
    host: 127.0.0.1
    port: 8000
    max_candidates: 1000               # more per request -> 413
    torch_threads: 1                   # per worker: one request at a time is fastest on 1 thread
    workers: 1                         # uvicorn worker processes
    max_body_bytes: 1048576            # larger request bodies -> 413 before they are read in full
    max_in_flight: 32                  # /score + /events handled at once; more -> 503 + Retry-After
    auth_token: null                   # set: /events needs "Authorization: Bearer <token>" (401 otherwise)
    auth_score: false                  # true: /score needs the token too
    events_max_future_s: 300           # an event time further ahead of the server clock -> 422
    events_min_time: "2000-01-01T00:00:00Z"  # an earlier event time -> 422
    store_timeout_s: 0.5               # the service's Redis connect / reply timeout (a hung Redis -> 503)
    require_materialized: true         # /health and /events answer 503 when a view's marker is missing
    backend: torch                     # the model's runtime: torch, onnx or onnx-int8 (onnx extra)
    event_types: click,like            # /events types that append to the behaviour sequence (e.g. purchase,add_to_cart)

Environment: MOON_SERVING_<FIELD> (e.g. MOON_SERVING_PORT=9000); MOON_SERVING_CONFIG names the file.
The token is best given as MOON_SERVING_AUTH_TOKEN (docs/reliability.md: access and gateways).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import yaml

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
    max_body_bytes: int = 1 << 20
    max_in_flight: int = 32
    auth_token: str | None = None
    auth_score: bool = False
    events_max_future_s: int = 300
    events_min_time: str = "2000-01-01T00:00:00Z"
    store_timeout_s: float = 0.5
    require_materialized: bool = True
    backend: str = "torch"
    event_types: str = "click,like"  # comma-separated (a YAML list is accepted too)

    def __post_init__(self):
        if self.max_body_bytes < 1024 or self.max_in_flight < 1:
            raise SettingsError("max_body_bytes must be >= 1024 and max_in_flight >= 1")
        if not 0 < self.store_timeout_s <= 60 or self.events_max_future_s < 0:
            raise SettingsError("store_timeout_s must be in (0, 60] and events_max_future_s >= 0")
        if self.auth_token is not None and len(self.auth_token) < 16:
            raise SettingsError("auth_token must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        self.min_event_time()
        if self.max_candidates < 1:
            raise SettingsError(f"max_candidates must be >= 1, got {self.max_candidates}")
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be in 1..65535, got {self.port}")
        if self.workers < 1 or self.torch_threads < 1:
            raise SettingsError("workers and torch_threads must be >= 1")
        if not self.event_type_set():
            raise SettingsError("event_types must name at least one event type, e.g. click,purchase")
        if self.backend not in ("torch", "onnx", "onnx-int8"):
            raise SettingsError(f"backend must be torch, onnx or onnx-int8, got {self.backend!r}")

    def event_type_set(self) -> frozenset[str]:
        """The event types /events accepts: each is a positive event appended to the sequence."""
        return frozenset(t.strip() for t in str(self.event_types).split(",") if t.strip())

    def min_event_time(self):
        """events_min_time as an aware UTC datetime."""
        try:
            t = datetime.fromisoformat(self.events_min_time.replace("Z", "+00:00"))
        except ValueError:
            raise SettingsError(f"events_min_time {self.events_min_time!r} is not an ISO 8601 time") from None
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)

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
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else (yaml.safe_load(text) or {})
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        raise SettingsError(f"serving config file {path} cannot be parsed ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path} must hold a mapping of settings, got {type(data).__name__}")
    return data


def _coerce(name: str, value, type_name: str):
    if str(type_name) == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"setting {name} must be true or false, got {value!r}")
    if str(type_name) == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"setting {name} must be a number, got {value!r}") from None
    if "int" in str(type_name):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"setting {name} must be an integer, got {value!r}") from None
    if isinstance(value, (list, tuple)):  # event_types as a YAML / JSON list
        return ",".join(map(str, value))
    return None if value in ("", "null", "None") else str(value)
