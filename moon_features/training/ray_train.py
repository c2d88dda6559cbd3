"""Data-parallel training on Ray Train: TorchTrainer, DDP over gloo on CPU workers.

Equal to single-process training by construction, not by luck. Every one of the W Ray workers
runs the project's own Trainer (same loop, loss, seed, early stopping) from the same initial
weights, and draws the very global batches one process would draw (same shuffle, same
batch_size). Worker r trains on part r of each global batch, its loss weighted by its share
(Trainer(shard=(r, W))), so DDP's gradient average is the global batch's gradient. Batch norms
(Dice's) normalise with the global batch's statistics (ctr_models.layers.global_batch_norm). Every
update thus equals the single-process one up to float summation order (with dropout 0, the
default: dropout masks cannot be shared). DDP keeps the replicas identical, every worker validates
on the full validation set and so stops at the same epoch; rank 0 reports the best weights as a
Ray checkpoint, which the driver loads into the model it saves as the artifact.

The data is handed to the workers through Ray's object store (fine for the sizes a training
set of this project has on one machine; a cluster-sized set would be read per shard from the
Ray offline store's output instead, see docs/scale-out.md).
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import torch

from ctr_models.data import CTRData
from ctr_models.layers.global_batch_norm import global_batch_norm
from ctr_models.trainer import FitResult, Trainer, TrainerConfig

from ..errors import MoonFeaturesError


def _worker_loop(config: dict) -> None:
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(1)  # one core per worker: the workers are the parallelism
    model = ray.train.torch.prepare_model(global_batch_norm(config["net"]),
                                          parallel_strategy_kwargs={"find_unused_parameters": True})
    cfg: TrainerConfig = dataclasses.replace(config["cfg"], checkpoint_dir=None, num_threads=None,
                                             progress=config["cfg"].progress and rank == 0)
    fit = Trainer(cfg, shard=(rank, world)).fit(model, config["train"], config["val"],
                                                name=f"{config['name']} [rank {rank}/{world}]")
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
