"""The embedding job on Ray Data: `map_batches` over the catalogue with one encoder per actor.

Each of `workers` actors loads the encoder once and embeds batches of `batch_size` items with
exactly the local job's code (embed._embed_chunk); the driver reads the results back in item
order (Ray Data's preserve_order) and writes them with the local job's writer, so the Parquet
source is the same file the local job writes (tested: max |difference| <= 1e-5).

On a laptop Ray starts locally with `workers` CPUs; on a cluster set RAY_ADDRESS (or call
ray.init yourself first) and the same call fans out over its nodes. Images are read by the
actors from `root`, so on a cluster that path must be shared storage.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from ..errors import MoonFeaturesError
from .checkpoint import load_encoder
from .embed import _embed_chunk


class RayNotInstalledError(MoonFeaturesError, ImportError):
    """--engine ray needs the ray extra."""


def require_ray():
    try:
        import ray
    except ImportError as e:
        raise RayNotInstalledError("--engine ray needs Ray: pip install 'moon-features[ray]'") from e
    return ray


def ensure_ray(workers: int):
    """ray.init on `workers` local CPUs unless Ray is already up (or RAY_ADDRESS names a cluster)."""
    ray = require_ray()
    if not ray.is_initialized():
        kwargs = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": max(1, workers)}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    return ray


class _Embedder:
    """A Ray Data actor: one encoder, reused for every batch it gets."""

    def __init__(self, model_dir: str, root: str, dim: int):
        torch.set_num_threads(1)  # one core per actor: the actors are the parallelism
        self.model, self.featurizer = load_encoder(model_dir)
        self.model.eval()
        self.root, self.dim = Path(root), dim

    def __call__(self, chunk: pd.DataFrame) -> dict:
        ids, emb, has_image, bad = _embed_chunk(self.model, self.featurizer, chunk, self.root, self.dim)
        reasons = np.array([bad.get(int(i), "") for i in ids], dtype=object)
        return {"item_id": ids, "embedding": emb, "has_image": has_image, "bad_image": reasons}


def ray_embedded_batches(model_dir, root, items: pd.DataFrame, dim: int, batch_size: int,
                         workers: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, dict]]:
    """(item ids, embeddings, has_image, bad images) per batch, in item order, computed on Ray."""
    ray = ensure_ray(workers)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    # Timestamps stay on the driver (the writer stamps first_seen); the actors need content only.
    ds = ray.data.from_pandas(items.drop(columns=["first_seen"]), override_num_blocks=max(1, workers * 4))
    out = ds.map_batches(_Embedder, fn_constructor_kwargs={"model_dir": str(model_dir), "root": str(root), "dim": dim},
                         batch_size=batch_size, batch_format="pandas", concurrency=max(1, workers), num_cpus=1)
    for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
        emb = np.asarray(batch["embedding"], dtype=np.float32).reshape(len(batch["item_id"]), dim)
        bad = {int(i): str(r) for i, r in zip(batch["item_id"], batch["bad_image"]) if r}
        yield batch["item_id"].astype(np.int64), emb, np.asarray(batch["has_image"], bool), bad
