"""Training the item encoder in MOON's two stages.

Stage 1 (pretraining): image <-> title InfoNCE, in-batch negatives, learnable temperature.
Stage 2 (post-training on behaviour): positives are items co-engaged by the same user close
in time; queries of item A in three forms (image, text, multimodal) against the multimodal
embedding of item B; negatives = in-batch + same-category hard negatives + a memory queue of
earlier batches (MOON's spatial-temporal negatives); plus the intra-product image<->title loss.

Determinism: every epoch draws its randomness from (seed, epoch) only, so a run resumed from
the checkpoint of epoch e continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .cache import CatalogueCache, build_catalogue_cache
from .checkpoint import TRAINER_STATE, check_same_architecture, load_encoder, load_trainer_state, save_encoder
from .columns import choose_text_columns
from .configuration import MoonEncoderConfig, Preset, TrainSchedule, get_preset
from .cut import interactions_before, resolve_before
from .data import ItemFeaturizer, build_attribute_vocab
from .errors import CheckpointMismatchError, EncoderError
from .losses import alignment_loss, inter_product_loss
from .modeling import MoonItemEncoder
from .pairs import co_engagement_pairs, symmetric
from .runtime import TimeEstimate, set_threads
from .taste import click_histories, fit_taste

CHECKPOINT_DIR, MODEL_DIR = "checkpoint", "model"


def resolve_preset(preset: str | Preset, model_overrides: dict | None = None,
                   schedule_overrides: dict | None = None) -> Preset:
    p = get_preset(preset) if isinstance(preset, str) else preset
    model = {**p.model, **(model_overrides or {})}
    schedule = replace(p.schedule, **(schedule_overrides or {}))
    return Preset(p.name, model, schedule)


def category_column(dataset) -> str | None:
    """The attribute used for same-category hard negatives: `category`, else the first categorical."""
    if "category" in dataset.items.columns:
        return "category"
    return dataset.meta.item_categorical[0] if dataset.meta.item_categorical else None


class MemoryQueue:
    """FIFO of multimodal embeddings (and item ids, catalogue rows) from earlier batches, used as
    extra negatives."""

    def __init__(self, size: int, dim: int):
        self.size = size
        self.z = torch.zeros(0, dim)
        self.ids = torch.zeros(0, dtype=torch.long)
        self.rows = torch.zeros(0, dtype=torch.long)

    def push(self, z: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        if self.size <= 0:
            return
        rows = torch.full_like(ids, -1) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        self.z = torch.cat([z.detach(), self.z])[: self.size]
        self.ids = torch.cat([ids, self.ids])[: self.size]
        self.rows = torch.cat([rows, self.rows])[: self.size]

    def state_dict(self) -> dict:
        return {"z": self.z, "ids": self.ids, "rows": self.rows}

    def load_state_dict(self, s: dict) -> None:
        self.z, self.ids = s["z"], s["ids"]
        self.rows = s.get("rows", torch.full_like(self.ids, -1))


def positive_log_frequency(pairs: np.ndarray, n_items: int) -> torch.Tensor:
    """log(N * q_j): q_j = how often catalogue row j is the positive B of a training pair (the
    distribution in-batch and queue negatives are drawn from), relative to uniform (0 = uniform).
    Used only in the loss (logQ correction), never as a model input."""
    counts = np.bincount(pairs[:, 1], minlength=n_items).astype(np.float64) if len(pairs) else np.zeros(n_items)
    q = (counts + 1.0) / (counts.sum() + n_items)  # +1: rows never sampled stay finite
    return torch.as_tensor(np.log(q * n_items), dtype=torch.float32)


def posttrain_steps(n_pairs: int, schedule) -> int:
    """Batches in one stage-2 epoch: at most `max_pairs_per_epoch` pairs, at least one batch."""
    return max(1, min(n_pairs, schedule.max_pairs_per_epoch) // schedule.batch_size)


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    torch.manual_seed(seed * 100_003 + epoch)  # dropout etc. of this epoch
    return np.random.default_rng([seed, epoch])


def _pretrain_epoch(model, cache, optimizer, rng, schedule, dims, progress, desc, eta=None):
    rows = np.flatnonzero(cache.items.has_image.numpy())
    rows = rng.permutation(rows)
    n_batches = max(1, len(rows) // schedule.batch_size)  # drop the ragged last batch
    losses = []
    bar = tqdm(range(n_batches), desc=desc, disable=not progress, unit="batch", leave=False)
    for b in bar:
        r = rows[b * schedule.batch_size: (b + 1) * schedule.batch_size]
        views = rng.integers(0, cache.n_views, len(r))
        out = model(cache.batch(r, views))
        ids = torch.as_tensor(cache.item_ids[r])
        # image <-> title, plus each single-modality view <-> the item's own multimodal embedding:
        # image search compares an image-only query with multimodal gallery embeddings, so the
        # three must share one space (without this, near-duplicate recall was 0).
        loss = (alignment_loss(out.image, out.text, ids, model.logit_scale, dims)
                + alignment_loss(out.image, out.multimodal, ids, model.logit_scale, dims)
                + alignment_loss(out.text, out.multimodal, ids, model.logit_scale, dims)) / 3
        if schedule.view_weight > 0 and cache.n_views > 1:
            # image <-> another view of the same image: instance discrimination keeps everything
            # that tells products apart under re-uploads (colour, pattern, shape), not just what
            # the titles happen to mention.
            other = model(cache.batch(r, (views + 1) % cache.n_views), modes=("image",)).image
            loss = loss + schedule.view_weight * alignment_loss(out.image, other, ids, model.logit_scale, dims)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", T=f"{1 / model.logit_scale.exp().item():.3f}")
        if eta is not None:
            eta.step()
    return float(np.mean(losses))


def _posttrain_epoch(model, cache, optimizer, rng, schedule, dims, pairs, same_category, queue, progress, desc,
                     intra_weight, log_freq=None, step0=0, base_lr=None, eta=None):
    order = rng.permutation(len(pairs))[: schedule.max_pairs_per_epoch]
    n_batches = posttrain_steps(len(pairs), schedule)
    losses = []
    bar = tqdm(range(n_batches), desc=desc, disable=not progress, unit="batch", leave=False)
    for b in bar:
        if schedule.posttrain_warmup_steps > 0 and base_lr is not None:  # a function of the step only
            for g in optimizer.param_groups:
                g["lr"] = base_lr * min(1.0, (step0 + b + 1) / schedule.posttrain_warmup_steps)
        sel = pairs[order[b * schedule.batch_size: (b + 1) * schedule.batch_size]]
        a_rows, b_rows = sel[:, 0], sel[:, 1]
        a_views = rng.integers(0, cache.n_views, len(a_rows))  # queries see near-duplicate images too
        hard = [rng.choice(same_category[r]) for r in b_rows for _ in range(schedule.hard_negatives)
                if len(same_category.get(r, ())) > 0]
        hard = np.asarray(hard, dtype=np.int64)
        uniform = rng.integers(0, len(cache), schedule.uniform_negatives).astype(np.int64)
        out_a = model(cache.batch(a_rows, a_views))
        z_bh = model(cache.batch(np.concatenate([b_rows, hard, uniform])), modes=("multimodal",)).multimodal
        z_b, z_h = z_bh[: len(b_rows)], z_bh[len(b_rows):]
        ids = torch.as_tensor(cache.item_ids)
        a_ids, b_ids, h_ids = ids[a_rows], ids[b_rows], ids[np.concatenate([hard, uniform])]
        negatives = torch.cat([z_h, queue.z])
        neg_ids = torch.cat([h_ids, queue.ids])
        key_logq = None
        if log_freq is not None:  # in-batch and queue keys were sampled like positives; hard / uniform ~ uniformly
            queue_logq = torch.where(queue.rows >= 0, log_freq[queue.rows.clamp(min=0)], torch.zeros(len(queue.rows)))
            key_logq = torch.cat([log_freq[b_rows], torch.zeros(len(h_ids)), queue_logq])
        a_has_image = cache.items.has_image[a_rows]
        inter = inter_product_loss({"image": out_a.image, "text": out_a.text, "multimodal": out_a.multimodal},
                                   z_b, b_ids, a_ids, model.behaviour_logit_scale, dims, negatives, neg_ids,
                                   query_valid={"image": a_has_image}, key_logq=key_logq)
        intra = 0.5 * (alignment_loss(out_a.image, out_a.text, a_ids, model.logit_scale, dims, valid=a_has_image)
                       + alignment_loss(out_a.image, out_a.multimodal, a_ids, model.logit_scale, dims,
                                        valid=a_has_image))
        loss = inter + intra_weight * intra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.max_grad_norm)
        optimizer.step()
        queue.push(z_b, b_ids, torch.as_tensor(b_rows))
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", T=f"{1 / model.behaviour_logit_scale.exp().item():.3f}")
        if eta is not None:
            eta.step()
    return float(np.mean(losses))


@dataclass
class TrainingData:
    """What the epochs read besides the model: the cache, pairs and negatives' helpers."""

    cache: CatalogueCache
    pairs: np.ndarray                       # (n, 2) catalogue rows, both directions
    same_category: dict[int, np.ndarray]
    log_freq: torch.Tensor | None
    tower_stats: dict


def _start_or_resume(config, ckpt: Path, resume: bool, seed: int, schedule, pretrained_towers: bool):
    """(model, featurizer, trainer state or None): from the checkpoint of the same config, or new."""
    if resume and (ckpt / TRAINER_STATE).exists():
        check_same_architecture(MoonEncoderConfig.from_pretrained(ckpt), config, ckpt)
        state = load_trainer_state(ckpt)
        if state["seed"] != seed or _comparable(state["schedule"]) != _comparable(schedule.to_dict()):
            raise CheckpointMismatchError(f"checkpoint {ckpt} was trained with seed={state['seed']} and schedule "
                                          f"{state['schedule']}; requested seed={seed}, {schedule.to_dict()}. Use "
                                          "the same settings, a new --out directory, or --no-resume.")
        model, featurizer = load_encoder(ckpt, expect=config)
        return model, featurizer, state
    torch.manual_seed(seed)
    model = MoonItemEncoder.from_towers(config) if pretrained_towers else MoonItemEncoder(config)
    return model, ItemFeaturizer(config, ItemFeaturizer.default_tokenizer(config)), None


def _comparable(schedule: dict) -> dict:
    return {k: v for k, v in schedule.items() if k != "num_threads"}  # threads change speed, not results


def _training_data(model, featurizer, dataset, items, schedule, seed, tower_store, progress) -> TrainingData:
    t0 = time.time()
    cache, stats = build_catalogue_cache(model, featurizer, items, dataset.root, schedule.augment_views, seed,
                                         tower_store, progress)
    stats["tower_seconds"] = round(time.time() - t0, 1)
    if cache.items.bad_images:
        print(f"warning: {len(cache.items.bad_images)} unreadable image(s), trained text-only: "
              + ", ".join(f"{k} ({v})" for k, v in list(cache.items.bad_images.items())[:10]))
    raw_pairs = co_engagement_pairs(dataset.interactions, items["item_id"], schedule.pair_window,
                                    schedule.pair_max_gap_s)
    pairs = cache.rows(symmetric(raw_pairs).ravel()).reshape(-1, 2) if len(raw_pairs) else np.zeros((0, 2), np.int64)
    if schedule.posttrain_epochs and len(pairs) < schedule.batch_size:
        raise EncoderError(f"only {len(pairs)} co-engagement pairs in {dataset.root} (need >= batch size "
                           f"{schedule.batch_size}); lower batch_size, widen pair_window / pair_max_gap_s, or add "
                           "interactions (or a later --before)")
    cat_col = category_column(dataset)
    same_category: dict[int, np.ndarray] = {}
    if cat_col is not None and schedule.hard_negatives > 0:
        cats = items[cat_col].astype(str).to_numpy()
        by_cat = {c: np.flatnonzero(cats == c) for c in np.unique(cats)}
        same_category = {r: by_cat[cats[r]][by_cat[cats[r]] != r] for r in range(len(items))}
    log_freq = positive_log_frequency(pairs, len(items)) if schedule.logq_correction else None
    return TrainingData(cache, pairs, same_category, log_freq, stats)


def _stage_estimate(epoch: int, n1: int, n2: int, data: TrainingData, schedule, progress) -> TimeEstimate:
    """The time estimate of the stage `epoch` starts (measured on its first batches)."""
    if epoch < n1:
        per_epoch = max(1, int(data.cache.items.has_image.sum()) // schedule.batch_size)
        return TimeEstimate(f"stage 1 ({n1 - epoch} epoch(s))", per_epoch * (n1 - epoch), probe=5, enabled=progress)
    per_epoch = posttrain_steps(len(data.pairs), schedule)
    return TimeEstimate(f"stage 2 ({n1 + n2 - epoch} epoch(s))", per_epoch * (n1 + n2 - epoch), probe=5,
                        enabled=progress)


def _run_epochs(model, featurizer, data: TrainingData, schedule, seed, ckpt, state, progress, stop_after_epoch):
    """Both stages from the checkpointed epoch on; (history, first epoch of this call, stopped early)."""
    config, dims = model.config, model.config.embedding_dims
    n1, n2 = schedule.pretrain_epochs, schedule.posttrain_epochs
    queue = MemoryQueue(schedule.queue_size, config.max_dim)
    params = [p for p in model.parameters() if p.requires_grad]

    def new_optimizer(lr):
        return torch.optim.AdamW(params, lr=lr, weight_decay=schedule.weight_decay)

    optimizer = new_optimizer(schedule.lr if n1 > 0 else schedule.posttrain_lr)
    history, start = [], 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        queue.load_state_dict(state["queue"])
        history, start = state["history"], state["epochs_done"]
        print(f"resuming from {ckpt} after epoch {start}/{n1 + n2}")
    model.train()
    eta = None
    for epoch in range(start, n1 + n2):
        if epoch == n1 and epoch > 0:  # stage 2 starts with a fresh optimizer and an empty queue
            optimizer = new_optimizer(schedule.posttrain_lr)
            queue = MemoryQueue(schedule.queue_size, config.max_dim)
        if epoch in (start, n1):
            eta = _stage_estimate(epoch, n1, n2, data, schedule, progress)
        rng, te = _epoch_rng(seed, epoch), time.time()
        if epoch < n1:
            stage, desc = 1, f"stage 1 pretrain {epoch + 1}/{n1}"
            loss = _pretrain_epoch(model, data.cache, optimizer, rng, schedule, dims, progress, desc, eta)
        else:
            stage, desc = 2, f"stage 2 posttrain {epoch - n1 + 1}/{n2}"
            loss = _posttrain_epoch(model, data.cache, optimizer, rng, schedule, dims, data.pairs, data.same_category,
                                    queue, progress, desc, schedule.intra_weight, log_freq=data.log_freq,
                                    step0=(epoch - n1) * posttrain_steps(len(data.pairs), schedule),
                                    base_lr=schedule.posttrain_lr, eta=eta)
        if not np.isfinite(loss):
            raise EncoderError(f"training diverged in {desc} (loss={loss}); lower the learning rate (lr)")
        history.append({"epoch": epoch + 1, "stage": stage, "loss": round(loss, 5),
                        "temperature": round(1 / model.logit_scale.exp().item(), 5),
                        "behaviour_temperature": round(1 / model.behaviour_logit_scale.exp().item(), 5),
                        "seconds": round(time.time() - te, 1)})
        if progress:
            print(f"{desc}: loss {loss:.4f}, {history[-1]['seconds']} s")
        save_encoder(model, featurizer.tokenizer, ckpt, trainer_state={
            "epochs_done": epoch + 1, "optimizer": optimizer.state_dict(), "queue": queue.state_dict(),
            "history": history, "seed": seed, "schedule": schedule.to_dict()})
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < n1 + n2:
            print(f"stopped after epoch {epoch + 1}/{n1 + n2}; resume with the same arguments -> {ckpt}")
            return history, start, True
    return history, start, False


def _fit_served_parts(model, cache, dataset, seed: int, progress: bool) -> list[float]:
    """After training: whitening, content projection and the taste head (trained on the same
    interactions as the encoder, so `before` keeps it leak-free). Returns the taste losses."""
    config = model.config
    if not (config.whiten_output or model.uses_content):
        return []
    content = cache.fit_output(model)
    if not config.taste_dims:
        return []
    examples = click_histories(dataset.interactions, cache.row_of, seed=seed)
    losses = fit_taste(model.output.taste, content, examples, seed=seed, progress=progress)
    if progress:
        print(f"taste head: {len(examples['label']):,} impressions with a click history, "
              f"loss {' -> '.join(f'{v:.4f}' for v in losses)}")
    return [round(v, 5) for v in losses]


def train_encoder(dataset, preset: str | Preset = "small", out_dir: str | Path = "runs/encoder", seed: int = 0,
                  model_overrides: dict | None = None, schedule_overrides: dict | None = None,
                  resume: bool = True, progress: bool = True, pretrained_towers: bool = True,
                  stop_after_epoch: int | None = None, before=None, tower_store: str | Path | None = None) -> Path:
    """Train both stages on `dataset` (a moon_features.data.layout.Dataset). With `before` (a date,
    or "auto": the end of `train`'s training split) only the interactions before it are used,
    pairs included (a leak-free run without a copy of the dataset). Writes `<out_dir>/checkpoint` after every epoch and `<out_dir>/model` at the end;
    returns the latter. `tower_store`: a folder where frozen tower outputs persist across runs
    (frozen.py); None keeps them in memory for this run only.

    With resume=True an existing checkpoint of the same config continues where it stopped; a
    checkpoint of a different config raises CheckpointMismatchError. `stop_after_epoch` ends the
    run after that (global) epoch's checkpoint, as a time-boxed job or a crash would; returns the
    checkpoint folder then."""
    t0 = time.time()
    preset = resolve_preset(preset, model_overrides, schedule_overrides)
    schedule: TrainSchedule = preset.schedule
    threads = set_threads(schedule.num_threads, verbose=progress)
    before = resolve_before(dataset, before)
    dataset = interactions_before(dataset, before)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = dataset.items.sort_values("item_id").reset_index(drop=True)
    text_columns = choose_text_columns(dataset, preset.model.get("text_columns", ["title"]))
    if progress:
        print(f"text columns: {', '.join(text_columns)}")
    config = MoonEncoderConfig(**{**preset.model, "text_columns": text_columns},
                               attribute_vocab=build_attribute_vocab(items, list(dataset.meta.item_categorical)))
    ckpt = out_dir / CHECKPOINT_DIR
    model, featurizer, state = _start_or_resume(config, ckpt, resume, seed, schedule, pretrained_towers)
    data = _training_data(model, featurizer, dataset, items, schedule, seed, tower_store, progress)
    history, start, stopped = _run_epochs(model, featurizer, data, schedule, seed, ckpt, state, progress,
                                          stop_after_epoch)
    if stopped:
        return ckpt
    taste_losses = _fit_served_parts(model, data.cache, dataset, seed, progress)
    summary = {"preset": preset.name, "seed": seed, "schedule": schedule.to_dict(), "threads": threads,
               "dataset": dataset.meta.name, "before": None if before is None else str(before),
               "interactions": int(len(dataset.interactions)), "text_columns": text_columns,
               "items": len(items), "items_with_image": int(data.cache.items.has_image.sum()),
               "bad_images": {str(k): v for k, v in data.cache.items.bad_images.items()},
               "co_engagement_pairs": int(len(data.pairs)), "history": history, **data.tower_stats,
               "taste_losses": taste_losses,
               "train_seconds": round(time.time() - t0, 1),  # this call only: a resumed run did less
               "resumed_after_epoch": start if state is not None else None,
               "epoch_seconds": round(sum(h["seconds"] for h in history), 1)}  # every epoch, any process
    model_dir = save_encoder(model, featurizer.tokenizer, out_dir / MODEL_DIR, extra=summary)
    print(f"trained encoder ({preset.name}): {schedule.pretrain_epochs} pretrain + {schedule.posttrain_epochs} "
          f"post-train epochs on {len(items)} items, {len(data.pairs)} pairs in {summary['train_seconds']} s "
          f"(tower pass {data.tower_stats['tower_seconds']} s) -> {model_dir}")
    return model_dir
