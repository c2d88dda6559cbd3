"""Batch inference over a catalogue into the Parquet source of feature view
item_moon_embedding_v<version>.

Why event_timestamp = the item's first_seen: Feast's point-in-time join gives a training row
at time t the latest feature row with event_timestamp <= t. Stamping embeddings with the
time the job ran would hide them from every historical training row (all earlier than the
run), so the CTR model would train on missing embeddings and serve with present ones. An
item's content (image, title) exists from first_seen on, so that is when its embedding
becomes valid. (The encoder itself was trained on behaviour up to its training cut-off; the
feature service pins the version, and evaluation should use rows after that cut-off.)

Streaming: one batch of images is decoded, embedded and appended to a temporary Parquet file
at a time, so memory stays bounded by the batch size. The file is renamed into place only
after every item embedded cleanly: a NaN anywhere fails the job with nothing written.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from .cache import CatalogueCache
from .checkpoint import load_encoder
from .configuration import embedding_view_name
from .errors import EmbeddingNaNError
from .frozen import image_outputs, image_store, text_outputs, text_store
from .runtime import TimeEstimate, set_threads

SCHEMA = pa.schema([
    ("item_id", pa.int64()),
    ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ("embedding", pa.list_(pa.float32())),
    ("encoder_version", pa.string()),
    ("has_image", pa.bool_()),
])


@dataclass
class EmbedReport:
    path: str
    view_name: str
    version: int
    dim: int
    n_items: int
    n_text_only: int
    bad_images: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    items_per_s: float = 0.0
    batch_size: int = 0
    image_size: int = 0
    num_threads: int = 1

    def summary(self) -> str:
        return (f"embedded {self.n_items:,} items ({self.n_text_only:,} text-only, {len(self.bad_images)} corrupt "
                f"images) at dim {self.dim} in {self.seconds:.1f} s = {self.items_per_s:.1f} items/s "
                f"(batch {self.batch_size}, {self.image_size}px, {self.num_threads} thread(s)) -> {self.path} "
                f"[{self.view_name}]")

    def to_dict(self) -> dict:
        return asdict(self)


def embed_catalogue(model_dir, dataset, out_path, version: int, dim: int | None = None, batch_size: int = 64,
                    progress: bool = True, num_threads: int | None = 1, engine: str = "local",
                    workers: int = 1, tower_store=None) -> EmbedReport:
    """Embed every item into `out_path`. engine="ray": Ray Data map_batches over `workers` actors
    (embed_ray.py), written in item order exactly as the local job writes it. `tower_store`: a
    folder of frozen tower outputs shared with `train_encoder` (frozen.py): items found there are
    neither decoded nor run through the frozen towers. num_threads None: runtime.safe_thread_count."""
    view = embedding_view_name(version)  # validates the version first
    num_threads = set_threads(num_threads, verbose=progress)
    model, featurizer = load_encoder(model_dir)
    dim = model.config.check_dim(dim)
    items = dataset.items.sort_values("item_id").reset_index(drop=True)
    frozen = model.config.freeze_image_tower and model.config.freeze_text_tower
    if engine == "ray":
        from .embed_ray import ray_embedded_batches

        batches = ray_embedded_batches(model_dir, dataset.root, items, dim, batch_size, workers)
    elif engine == "local" and tower_store is not None and frozen:
        batches = _stored_tower_batches(model, featurizer, items, dataset.root, dim, batch_size, tower_store)
    elif engine == "local":
        batches = (_embed_chunk(model, featurizer, items.iloc[i: i + batch_size], dataset.root, dim)
                   for i in range(0, len(items), batch_size))
    else:
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    t0 = time.time()
    n_text_only, bad = _write_source(Path(out_path), view, version, items, batches, progress)
    seconds = time.time() - t0
    report = EmbedReport(str(out_path), view, version, dim, len(items), n_text_only, bad, round(seconds, 2),
                         round(len(items) / max(seconds, 1e-9), 1), batch_size, model.config.image_size,
                         workers if engine == "ray" else num_threads)
    if progress:
        print(report.summary())
    return report


def _embed_chunk(model, featurizer, chunk, root, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(item ids, float32 [n, dim] embeddings, has_image, {item: unreadable-image reason}) of one chunk."""
    feats = featurizer.featurize(chunk, root)
    with torch.no_grad():
        emb = model.embed(featurizer.batch(feats), "multimodal", dim).numpy().astype(np.float32)
    return feats.item_ids, emb, feats.has_image.numpy(), dict(feats.bad_images)


def _stored_tower_batches(model, featurizer, items, root, dim: int, batch_size: int, store_root, block: int = 4096):
    """Like _embed_chunk's batches, with the frozen towers' outputs from (and added to) the tower
    store; `block` items at a time keep memory bounded."""
    stores = image_store(model, store_root), text_store(model, store_root)
    for i in range(0, len(items), block):
        part = items.iloc[i: i + block]
        feats = featurizer.featurize(part, root, load_images=False)
        images = image_outputs(model, part, root, 0, 0, stores[0], progress=False)
        feats.has_image, feats.bad_images = images.has_image, images.bad_images
        cache = CatalogueCache(model, featurizer, feats, images=images,
                               text_raw=text_outputs(model, feats, stores[1], progress=False)[0])
        for j in range(0, len(part), batch_size):
            rows = np.arange(j, min(j + batch_size, len(part)))
            with torch.no_grad():
                emb = model.embed(cache.batch(rows), "multimodal", dim).numpy().astype(np.float32)
            ids = feats.item_ids[rows]
            yield ids, emb, feats.has_image.numpy()[rows], {int(k): v for k, v in images.bad_images.items()
                                                             if k in set(ids.tolist())}


def _write_source(out_path: Path, view: str, version: int, items, batches, progress: bool) -> tuple[int, dict]:
    """Stream embedded batches (in item order) into a temporary Parquet file, renamed into place
    only when no NaN was found; returns (text-only items, bad images)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    first_seen = items["first_seen"]
    if getattr(first_seen.dt, "tz", None) is None:
        first_seen = first_seen.dt.tz_localize("UTC")
    expected = items["item_id"].to_numpy(np.int64)
    bad: dict[int, str] = {}
    nan_ids: list[int] = []
    n_text_only = pos = 0
    t0 = time.time()
    eta = TimeEstimate(f"embed {view}", len(items), "items", probe=min(512, len(items)), enabled=progress)
    writer = pq.ParquetWriter(tmp, SCHEMA, write_page_checksum=True)  # readers verify them (data.parquet_io)
    try:
        bar = tqdm(total=len(items), desc=f"embed {view}", unit="item", disable=not progress)
        for ids, emb, has_image, bad_images in batches:
            n = len(ids)
            if not np.array_equal(ids, expected[pos: pos + n]):  # an engine must keep the item order
                raise RuntimeError(f"embedded batch out of order at row {pos}")
            for item_id, reason in bad_images.items():
                bad[int(item_id)] = reason
                if progress:
                    tqdm.write(f"warning: item {item_id}: unreadable image ({reason}); using a text-only embedding")
            nan_rows = ~np.isfinite(emb).all(axis=1)
            if nan_rows.any():
                nan_ids += ids[nan_rows].tolist()
            n_text_only += int((~has_image).sum())
            if not nan_ids:  # once a NaN is found, keep scanning (to name every bad item) but stop writing
                writer.write_table(pa.table({
                    "item_id": pa.array(ids, pa.int64()),
                    "event_timestamp": pa.array(first_seen.iloc[pos: pos + n], pa.timestamp("us", tz="UTC")),
                    "embedding": pa.array(list(emb), pa.list_(pa.float32())),
                    "encoder_version": pa.array([f"v{version}"] * n, pa.string()),
                    "has_image": pa.array(has_image, pa.bool_()),
                }, schema=SCHEMA))
            pos += n
            bar.update(n)
            eta.step(n)
            bar.set_postfix(items_per_s=f"{pos / max(time.time() - t0, 1e-9):.1f}")
        bar.close()
    finally:
        writer.close()
    if nan_ids:
        tmp.unlink(missing_ok=True)
        raise EmbeddingNaNError(nan_ids)
    tmp.replace(out_path)
    return n_text_only, bad
