"""Online scoring: CTRScorer (Python API) and the HTTP service (moon_features.serving.app).

Heavy imports (torch, Feast, FastAPI) happen when a name is first used.
"""
from __future__ import annotations

__all__ = ["CTRScorer", "ScoreResult", "create_app", "ServingSettings"]


def __getattr__(name):
    if name in ("CTRScorer", "ScoreResult"):
        from . import scorer

        return getattr(scorer, name)
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ServingSettings":
        from .settings import ServingSettings

        return ServingSettings
    raise AttributeError(name)
