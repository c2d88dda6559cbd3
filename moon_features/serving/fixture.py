"""A small, real serving setup for tests, benchmarks and trying the service: a synthetic shop
repo with MOON embeddings, a DIN+MOON model trained on it from Feast, the online store filled."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..spec import FeatureSpec
from ..store.fixtures import build_repo
from ..store.repo import apply_repo, materialize_all


@dataclass
class ServingSetup:
    repo: Path
    model_dir: Path
    spec: FeatureSpec
    project: str


TINY_DIN = {"embed_dim": 8, "dnn_hidden": (32, 16), "attention_hidden": (16,)}


def train_tiny_model(repo: Path, model_dir: Path, use_moon: bool = True, epochs: int = 1, seed: int = 0,
                     max_rows: int | None = 1000, model_overrides: dict | None = TINY_DIN) -> Path:
    """A small DIN trained from the repo's offline store in a few seconds: the latest `max_rows`
    interactions, one epoch (scores must be real model outputs; quality is not the point)."""
    from ctr_models.trainer import TrainerConfig

    from ..data.layout import load_dataset
    from ..store.sources import entity_rows
    from ..training.train import train_from_feast

    rows = entity_rows(load_dataset(repo.parent / "shop"))
    if max_rows:
        rows = rows.sort_values("event_timestamp", kind="stable").tail(max_rows)
    train_from_feast(repo, rows, model_dir, model="din", use_moon=use_moon,
                     trainer_config=TrainerConfig(epochs=epochs, progress=False, seed=seed),
                     model_overrides=model_overrides)
    return model_dir


def build_serving_setup(dst: str | Path, online: str = "redis", redis_connection: str = "127.0.0.1:6379",
                        n_items: int = 200, dim: int = 32, max_len: int = 20, epochs: int = 1,
                        project: str | None = None, materialize: bool = True,
                        model_overrides: dict | None = TINY_DIN) -> ServingSetup:
    """Repo (shop + embeddings) -> `feast apply` -> tiny DIN+MOON artifact -> materialize online."""
    dst = Path(dst)
    repo, spec = build_repo(dst, online=online, redis_connection=redis_connection, n_items=n_items, dim=dim,
                            max_len=max_len, project=project)
    store = apply_repo(repo)
    model_dir = train_tiny_model(repo, dst / "model", epochs=epochs, model_overrides=model_overrides)
    if materialize:
        materialize_all(store)
    return ServingSetup(repo, model_dir, spec, store.config.project)


def users_with_history(repo: Path, min_len: int = 1) -> np.ndarray:
    """User ids whose latest offline sequence has at least `min_len` items."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..spec import SEQUENCE_VIEW
    from ..store.definitions import source_path
    from ..store.repo import DATA_DIR

    t = pq.read_table(source_path(Path(repo) / DATA_DIR, SEQUENCE_VIEW), columns=["user_id", "hist_len"])
    users = t.filter(pc.greater_equal(t.column("hist_len"), min_len)).column("user_id").to_numpy()
    return np.unique(users)
