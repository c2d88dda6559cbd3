"""The frozen towers' outputs for a whole catalogue (clean image, augmented views, text).

With a `store_root` they come from and go to the on-disk TowerStore: items whose image file and
token ids were seen before by the same tower are not decoded, augmented or run through the tower
again. Without one they are computed in memory, as before the store existed.

Keys: an image view is (sha1 of the image file, and for an augmented view also the item id, the
seed and the view number: augmentation is drawn from (seed, item id), data.view_pixels); a text
is the sha1 of its token ids (the only input of the text tower).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .data import FeaturizedItems, normalize_pixels, open_image, view_pixels
from .errors import ImageLoadError
from .modeling import MoonItemEncoder, colour_histogram
from .runtime import TimeEstimate
from .tower_store import TowerStore, file_digest, module_fingerprint

AUGMENT_VERSION = 1  # bump when data.augment changes: old augmented entries stop matching


@dataclass
class ImageOutputs:
    image_raw: torch.Tensor              # (V, N, P, C) float16, zeros where there is no image
    colour_raw: torch.Tensor | None      # (V, N, bins^3) float32, or None without a colour token
    has_image: torch.Tensor              # (N,) bool
    bad_images: dict[int, str] = field(default_factory=dict)
    computed: int = 0                    # items whose views went through the tower in this call


def image_store(model: MoonItemEncoder, store_root) -> TowerStore | None:
    if store_root is None:
        return None
    c = model.config
    fp = module_fingerprint(model.image_tower, c.image_tower, c.image_size, c.image_mean, c.image_std,
                            c.colour_bins, AUGMENT_VERSION)
    return TowerStore(store_root, f"image-{c.image_tower}", fp)


def text_store(model: MoonItemEncoder, store_root) -> TowerStore | None:
    if store_root is None:
        return None
    c = model.config
    return TowerStore(store_root, f"text-{c.text_tower}", module_fingerprint(model.text_tower, c.text_tower,
                                                                              c.max_text_length))


def view_key(digest: str, item_id: int, seed: int, view: int) -> str:
    return digest if view == 0 else f"{digest}:{item_id}:{seed}:{view}"


@torch.no_grad()
def run_image_tower(model: MoonItemEncoder, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(tokens float16, colour histogram or None) of uint8 images (K, 3, S, S)."""
    x = normalize_pixels(pixels, model.config)
    colour = colour_histogram(x, model.config) if model.config.colour_bins else None
    return model.image_raw_tokens(x).half(), colour


def image_outputs(model: MoonItemEncoder, items: pd.DataFrame, root: Path, n_aug: int, seed: int,
                  store: TowerStore | None = None, chunk: int = 64, progress: bool = True) -> ImageOutputs:
    """Tower outputs of every item's clean image and `n_aug` augmented views (entries of the
    image_store reused, missing ones computed and added)."""
    ids, paths = items["item_id"].to_numpy(np.int64), items["image_path"].tolist()
    n_views, found, todo, digests = 1 + n_aug, {}, [], {}
    for r, rel in enumerate(paths):
        if rel is None or (isinstance(rel, float) and np.isnan(rel)):
            continue
        digests[r] = file_digest(Path(root) / rel) or ""
        entries = [store.get(view_key(digests[r], ids[r], seed, v)) for v in range(n_views)] if store else [None]
        if store is not None and digests[r] and all(e is not None for e in entries):
            found[r] = entries
        else:
            todo.append(r)
    computed, bad = _compute_views(model, items, root, todo, n_views, seed, chunk, progress)
    if store is not None:
        _store_views(store, computed, digests, ids, seed, n_views)
    return _assemble(model, len(items), n_views, {**found, **computed}, bad, len(computed))


def _compute_views(model, items, root, rows, n_views, seed, chunk, progress):
    """{row: [{"tokens", "colour"} per view]} for the rows whose image decodes, {item: reason} for the others."""
    out, bad = {}, {}
    ids, paths, size = items["item_id"].to_numpy(np.int64), items["image_path"].tolist(), model.config.image_size
    eta = TimeEstimate("image tower", len(rows), "images", probe=min(2 * chunk, 256), enabled=progress)
    for i in tqdm(range(0, len(rows), chunk), desc=f"image tower ({n_views} view(s))", unit="chunk",
                  disable=not progress or not rows):
        ok, px = [], []
        for r in rows[i: i + chunk]:
            try:
                im = open_image(Path(root) / paths[r], int(ids[r]), size)
            except ImageLoadError as e:
                bad[int(ids[r])] = e.reason
                continue
            ok.append(r)
            px += view_pixels(im, int(ids[r]), n_views - 1, seed, size)
        if ok:
            tokens, colour = run_image_tower(model, torch.stack(px))
            for j, r in enumerate(ok):
                out[r] = [{"tokens": tokens[j * n_views + v]} | ({"colour": colour[j * n_views + v]} if colour is not None
                                                                  else {}) for v in range(n_views)]
        eta.step(len(rows[i: i + chunk]))
    return out, bad


def _store_views(store: TowerStore, computed: dict, digests: dict, ids, seed: int, n_views: int) -> None:
    rows = [r for r in computed if digests.get(r)]
    if not rows:
        return
    keys = [view_key(digests[r], ids[r], seed, v) for r in rows for v in range(n_views)]
    entries = [computed[r][v] for r in rows for v in range(n_views)]
    store.put(keys, {name: torch.stack([e[name] for e in entries]) for name in entries[0]})


def _assemble(model, n_items: int, n_views: int, entries: dict, bad: dict, n_computed: int) -> ImageOutputs:
    if entries:
        first = next(iter(entries.values()))[0]
    else:  # no item has an image: shape the outputs from one blank image
        size = model.config.image_size
        tokens, colour = run_image_tower(model, torch.zeros(1, 3, size, size, dtype=torch.uint8))
        first = {"tokens": tokens[0]} | ({"colour": colour[0]} if colour is not None else {})
    image_raw = torch.zeros(n_views, n_items, *first["tokens"].shape, dtype=torch.half)
    colour_raw = torch.zeros(n_views, n_items, *first["colour"].shape) if "colour" in first else None
    has_image = torch.zeros(n_items, dtype=torch.bool)
    for r, views in entries.items():
        has_image[r] = True
        for v, e in enumerate(views[:n_views]):
            image_raw[v, r] = e["tokens"]
            if colour_raw is not None:
                colour_raw[v, r] = e["colour"]
    return ImageOutputs(image_raw, colour_raw, has_image, bad, n_computed)


def text_key(input_ids: torch.Tensor, length: int) -> str:
    return hashlib.sha1(input_ids[:length].numpy().astype(np.int64).tobytes()).hexdigest()


@torch.no_grad()
def text_outputs(model: MoonItemEncoder, feats: FeaturizedItems, store: TowerStore | None = None, chunk: int = 128,
                 progress: bool = True) -> tuple[torch.Tensor, int]:
    """((N, L, C) float16 text tower outputs, distinct texts computed in this call). Items with the
    same token ids (e.g. every item without a title) share one tower run. Titles are short: the
    tower runs on length-sorted chunks cut to their longest text (same outputs for the real
    tokens, a fraction of the work of max_length padding)."""
    lengths = feats.attention_mask.sum(1)
    keys = [text_key(feats.input_ids[r], int(lengths[r])) for r in range(len(lengths))]
    first = {}  # key -> the first row holding it
    for r, k in enumerate(keys):
        first.setdefault(k, r)
    by_key = {k: e["tokens"] for k in first if store is not None and (e := store.get(k)) is not None}
    todo = torch.tensor([r for k, r in first.items() if k not in by_key], dtype=torch.long)
    order = todo[torch.argsort(lengths[todo], descending=True, stable=True)]
    computed = {}
    eta = TimeEstimate("text tower", len(order), "texts", probe=min(4 * chunk, 512), enabled=progress)
    for i in tqdm(range(0, len(order), chunk), disable=not progress or not len(order), desc="text tower",
                  unit="chunk"):
        rows = order[i: i + chunk]
        n = max(1, int(lengths[rows].max()))
        y = model.text_raw_tokens(feats.input_ids[rows, :n], feats.attention_mask[rows, :n]).half()
        padded = torch.zeros(len(rows), feats.input_ids.shape[1], y.shape[-1], dtype=torch.half)
        padded[:, :n] = y
        computed.update((keys[r], t) for r, t in zip(rows.tolist(), padded))
        eta.step(len(rows))
    if store is not None and computed:
        store.put(list(computed), {"tokens": torch.stack(list(computed.values()))})
    by_key.update(computed)
    width = next(iter(by_key.values())).shape[-1] if by_key else model.text_tower.out_channels
    text_raw = torch.zeros(len(lengths), feats.input_ids.shape[1], width, dtype=torch.half)
    for r, k in enumerate(keys):
        text_raw[r] = by_key[k]
    return text_raw, len(computed)
