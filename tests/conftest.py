"""Shared fixtures: a small synthetic shop and a Feast repository built from it (real Feast, SQLite)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_MOVIELENS = Path(__file__).resolve().parents[2] / "shared/data/movielens-100k"


@pytest.fixture(scope="session")
def shop_dir(tmp_path_factory) -> Path:
    from moon_features.data.synthetic import generate_shop

    root = tmp_path_factory.mktemp("shop")
    generate_shop(root, n_items=200, seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def shop(shop_dir):
    from moon_features.data.layout import load_dataset

    return load_dataset(shop_dir)


@pytest.fixture()
def feature_repo(shop_dir, tmp_path):
    """A freshly built and applied Feast repo over the shop (no embeddings)."""
    from moon_features.features import build_feature_repo

    repo = tmp_path / "repo"
    spec, store = build_feature_repo(shop_dir, repo, max_len=20)
    return repo, spec, store


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    path = Path(os.environ.get("MOON_MOVIELENS_DIR", SHARED_MOVIELENS))
    if not (path / "ml-100k.inter").exists():
        pytest.skip(f"MovieLens-100k not found at {path}")
    return path


_exit_status = 0


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config):
    # DuckDB's nanobind bindings print pages of "leaked instance" noise when the interpreter
    # finalises, burying pytest's summary line. Everything is written by now: leave directly.
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
