"""Feast definitions for moon-features: derived from spec.json, see moon_features.store.definitions."""
from pathlib import Path

from moon_features.store.definitions import repo_objects

globals().update(repo_objects(Path(__file__).resolve().parent))
