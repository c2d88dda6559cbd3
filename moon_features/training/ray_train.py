"""Data-parallel training on Ray Train: TorchTrainer, DDP over gloo on CPU workers.

Each of `workers` Ray workers runs the project's own Trainer (same loop, loss, early stopping)
on its shard of the training rows: rows rank, rank + W, rank + 2W, ... (equal shards, so every
worker takes the same number of steps and DDP's all-reduce never waits on a missing one). The
per-worker batch is batch_size / W, so one synchronised step sees the same number of rows as a
single-process step. DDP keeps the replicas identical, every worker validates on the full
validation set and so stops at the same epoch; rank 0 reports the best weights as a Ray
checkpoint, which the driver loads into the model it saves as the artifact.

The data is handed to the workers through Ray's object store (fine for the sizes a training
set of this project has on one machine; a cluster-sized set would be read per shard from the
Ray offline store's output instead, see docs/scale-out.md).
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ctr_models.data import CTRData
from ctr_models.trainer import FitResult, Trainer, TrainerConfig

from ..errors import MoonFeaturesError


def _worker_loop(config: dict) -> None:
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(1)  # one core per worker: the workers are the parallelism
    train: CTRData = config["train"]
    shard = train.subset(np.arange(rank, len(train) // world * world, world))
    model = ray.train.torch.prepare_model(config["net"], parallel_strategy_kwargs={"find_unused_parameters": True})
    cfg: TrainerConfig = dataclasses.replace(config["cfg"], batch_size=max(1, config["cfg"].batch_size // world),
                                             checkpoint_dir=None, num_threads=None,
                                             progress=config["cfg"].progress and rank == 0)
    fit = Trainer(cfg).fit(model, shard, config["val"], name=f"{config['name']} [rank {rank}/{world}]")
    metrics = {"best_epoch": fit.best_epoch, "epochs": len(fit.history)}
    if rank != 0:
        ray.train.report(metrics)
        return
    module = model.module if hasattr(model, "module") else model
    with tempfile.TemporaryDirectory() as d:
        torch.save({"state": module.state_dict(), "fit": dataclasses.asdict(fit)}, Path(d) / "model.pt")
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))


def _ensure_ray(workers: int) -> None:
    """A local Ray with one CPU per worker, unless Ray is up already or RAY_ADDRESS names a cluster."""
    try:
        import ray
    except ImportError as e:
        raise MoonFeaturesError("--engine ray needs Ray: pip install 'moon-features[ray]'") from e
    if not ray.is_initialized():
        kwargs = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": max(1, workers)}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)


def fit_on_ray(net: torch.nn.Module, train: CTRData, val: CTRData, cfg: TrainerConfig, workers: int = 2,
               name: str = "model", storage: str | Path | None = None) -> FitResult:
    """Train `net` on Ray Train with `workers` DDP workers; `net` ends with the best weights."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    _ensure_ray(workers)
    storage = Path(storage or tempfile.mkdtemp(prefix="moon_ray_train_"))
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"net": net, "train": train, "val": val, "cfg": cfg, "name": name},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
        torch_config=TorchConfig(backend="gloo"),
        run_config=RunConfig(name="moon_train", storage_path=str(storage.resolve())),
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        saved = torch.load(Path(d) / "model.pt", weights_only=False)
    net.load_state_dict(saved["state"])
    fit = FitResult(**saved["fit"])
    if cfg.progress:
        print(fit.summary(f"{name} on Ray ({workers} workers)", len(train)))
    return fit
