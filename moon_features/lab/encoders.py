"""Encoder variants for the lab, trained through the public `train_encoder` API.

The chain: one training run of the preset's schedule, stopped after each snapshot epoch with
`stop_after_epoch` and resumed (the encoder resumes bit-identically, and its learning rate is
constant within a stage), so the checkpoint after global epoch e *is* a run trained for e
epochs. Each snapshot is copied (weights, config, tokenizer; not the optimizer state) to
`<run>/encoders/snapshots/<name>`. Snapshot names: `pre<e>` = stage 1 only (no post-training),
`post<e>` = all of stage 1 + e stage-2 epochs.

Negatives sweep: one full run per memory-queue size in `<run>/encoders/queue<q>`.
Both skip what exists already, so a re-run resumes.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path


from ..encoder.checkpoint import TRAINER_STATE, load_trainer_state
from ..encoder.pairs import co_engagement_pairs, symmetric
from ..encoder.training import CHECKPOINT_DIR, resolve_preset, train_encoder
from .points import read_json, write_json
from .presets import LabError, LabPreset


@dataclass
class Snapshot:
    name: str
    path: Path
    stage: int                 # 1 = pretraining only, 2 = with post-training
    epoch: int                 # global epoch
    posttrain_examples: int    # co-engagement pairs seen in stage 2
    train_seconds: float       # wall seconds of the training calls that produced it (cumulative)


def chain_schedule(preset: LabPreset, threads: int):
    return resolve_preset(preset.encoder_preset, preset.model_overrides,
                          {**preset.schedule, "num_threads": threads}).schedule


def posttrain_examples_per_epoch(encoder_ds, schedule) -> int:
    """Pairs one stage-2 epoch trains on, as train_encoder computes them (both directions, capped
    at max_pairs_per_epoch, ragged last batch dropped)."""
    raw = co_engagement_pairs(encoder_ds.interactions, encoder_ds.items["item_id"], schedule.pair_window,
                              schedule.pair_max_gap_s)
    n = len(symmetric(raw)) if len(raw) else 0
    used = min(n, schedule.max_pairs_per_epoch)
    return max(1, used // schedule.batch_size) * schedule.batch_size if n >= schedule.batch_size else 0


def _copy_checkpoint(ckpt: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ckpt, tmp, ignore=shutil.ignore_patterns(TRAINER_STATE))
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def train_chain(run_dir: Path, preset: LabPreset, encoder_ds, threads: int = 1,
                progress: bool = True) -> list[Snapshot]:
    """Snapshots of the preset's chain, training only what is missing."""
    schedule = chain_schedule(preset, threads)
    n1, n2 = schedule.pretrain_epochs, schedule.posttrain_epochs
    wanted = [("pre", e, e) for e in preset.pretrain_snapshots if 0 < e <= n1]
    wanted += [("post", e, n1 + e) for e in preset.posttrain_snapshots if 0 < e <= n2]
    if not wanted:
        raise LabError(f"lab preset {preset.name!r} keeps no snapshot within {n1} + {n2} epochs")
    root = run_dir / "encoders"
    out = root / "chain"
    snap_dir = root / "snapshots"
    index_path = root / "snapshots.json"
    index = read_json(index_path) if index_path.exists() else {}
    per_epoch = posttrain_examples_per_epoch(encoder_ds, schedule) if n2 else 0
    ckpt = out / CHECKPOINT_DIR
    snaps = []
    for kind, e, global_e in sorted(wanted, key=lambda w: w[2]):
        name = f"{kind}{e}"
        dst = snap_dir / name
        if not (dst / "config.json").exists() or name not in index:
            done = load_trainer_state(ckpt)["epochs_done"] if (ckpt / TRAINER_STATE).exists() else 0
            if done > global_e:  # the chain ran past this snapshot without keeping it: start over
                print(f"chain checkpoint is at epoch {done} > {global_e} and snapshot {name} is missing; retraining "
                      "the chain from scratch")
                shutil.rmtree(out, ignore_errors=True)
                index, done = {}, 0
            t0 = time.perf_counter()
            if done < global_e:
                train_encoder(encoder_ds, preset.encoder_preset, out, seed=preset.seed,
                              model_overrides=preset.model_overrides,
                              schedule_overrides={**preset.schedule, "num_threads": threads}, resume=True,
                              progress=progress, stop_after_epoch=global_e)
            _copy_checkpoint(ckpt, dst)
            prev = max([v["train_seconds"] for v in index.values() if v["epoch"] < global_e], default=0.0)
            index[name] = {"stage": 1 if kind == "pre" else 2, "epoch": global_e,
                           "posttrain_examples": per_epoch * (e if kind == "post" else 0),
                           "train_seconds": round(prev + time.perf_counter() - t0, 1)}
            write_json(index_path, index)
            print(f"encoder snapshot {name}: global epoch {global_e}/{n1 + n2}, "
                  f"{index[name]['posttrain_examples']} post-training pairs seen, "
                  f"{index[name]['train_seconds']:.0f} s of training so far -> {dst}")
        snaps.append(Snapshot(name, dst, **index[name]))
    return snaps


def train_queue_variant(run_dir: Path, preset: LabPreset, encoder_ds, queue_size: int, threads: int = 1,
                        progress: bool = True) -> tuple[Path, float]:
    """A full chain-schedule run with memory-queue size `queue_size`; (model folder, training seconds)."""
    out = run_dir / "encoders" / f"queue{queue_size}"
    model = out / "model"
    if (model / "config.json").exists():
        info = read_json(model / "training.json") if (model / "training.json").exists() else {}
        return model, float(info.get("train_seconds", float("nan")))
    t0 = time.perf_counter()
    path = train_encoder(encoder_ds, preset.encoder_preset, out, seed=preset.seed,
                         model_overrides=preset.model_overrides,
                         schedule_overrides={**preset.schedule, "queue_size": queue_size, "num_threads": threads},
                         resume=True, progress=progress)
    return Path(path), time.perf_counter() - t0


def negatives_per_query(schedule, queue_size: int) -> int:
    """Negatives each stage-2 query is scored against at a full queue: the other positives of the
    batch, the batch's same-category hard negatives, and the memory queue."""
    return (schedule.batch_size - 1) + schedule.hard_negatives * schedule.batch_size + queue_size
