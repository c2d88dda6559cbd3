"""A catalogue's model inputs held in memory for a run (training / evaluation).

Images are decoded once (plus a few augmented near-duplicate views). When a pretrained tower
is frozen its outputs never change, so they are computed once (frozen.py, stored as float16 to
halve memory; on disk across runs with a tower store) and every training step only runs the
trainable part of the encoder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .data import FeaturizedItems, ItemFeaturizer, augmented_views, featurize_in_chunks, normalize_pixels
from .frozen import ImageOutputs, image_outputs, image_store, run_image_tower, text_outputs, text_store
from .modeling import ItemBatch, MoonItemEncoder, colour_histogram


class CatalogueCache:
    """`images` / `text_raw`: frozen tower outputs computed elsewhere (build_catalogue_cache);
    without them the frozen towers run here on the in-memory pixels."""

    def __init__(self, model: MoonItemEncoder, featurizer: ItemFeaturizer, items: FeaturizedItems,
                 augmented: torch.Tensor | None = None, chunk: int = 128, progress: bool = True,
                 images: ImageOutputs | None = None, text_raw: torch.Tensor | None = None):
        self.featurizer, self.items, self.config = featurizer, items, model.config
        self.item_ids = items.item_ids
        self.row_of = {int(i): r for r, i in enumerate(items.item_ids)}
        self.views = self.image_raw = self.colour_raw = None
        was_training = model.training
        model.eval()
        if images is not None:
            self.image_raw, self.colour_raw = images.image_raw, images.colour_raw
        else:
            views = [items.pixels] + ([] if augmented is None else list(augmented))
            self.views = torch.stack(views)  # (V, N, 3, S, S) uint8; view 0 is the clean image
            if self.config.colour_bins:  # (V, N, bins^3): cheap, and the frozen-tower path has no pixels
                self.colour_raw = torch.stack([colour_histogram(normalize_pixels(v, self.config), self.config)
                                               for v in self.views])
            if self.config.freeze_image_tower:
                self.image_raw = self._image_tower(model, chunk, progress)
        self.text_raw = text_raw
        if text_raw is None and self.config.freeze_text_tower:
            self.text_raw = text_outputs(model, items, None, chunk, progress)[0]
        model.train(was_training)

    def _image_tower(self, model, chunk, progress) -> torch.Tensor:
        """(V, N, P, C) float16 tower outputs of the in-memory views (rows with an image only:
        the others are masked out of every embedding)."""
        with_image = torch.nonzero(self.items.has_image).squeeze(1)
        blank = torch.zeros(1, *self.views.shape[2:], dtype=torch.uint8)
        shape = run_image_tower(model, blank)[0].shape[1:]
        raw = torch.zeros(len(self.views), len(self.item_ids), *shape, dtype=torch.half)
        for v in range(len(self.views)):
            for i in tqdm(range(0, len(with_image), chunk), disable=not progress,
                          desc=f"image tower (view {v})", unit="chunk"):
                rows = with_image[i: i + chunk]
                raw[v, rows] = run_image_tower(model, self.views[v, rows])[0]
        return raw

    @property
    def n_views(self) -> int:
        return (self.views if self.views is not None else self.image_raw).shape[0]

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows(self, item_ids) -> np.ndarray:
        return np.array([self.row_of[int(i)] for i in item_ids], dtype=np.int64)

    def batch(self, rows, views=None) -> ItemBatch:
        """Inputs for `rows`; `views[i]` picks the image view of row i (0 = clean)."""
        rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        views = torch.zeros_like(rows) if views is None else torch.as_tensor(np.asarray(views), dtype=torch.long)
        f = self.items
        # Trim padding columns every row of this batch has: titles are short, and each padded
        # token would cost a full pass through the fusion layers while contributing nothing.
        mask = f.attention_mask[rows]
        n_text = max(1, int(mask.sum(1).max()))
        attrs = f.attribute_ids[rows]
        n_attr = max(1, int((attrs != 0).sum(1).max()))
        b = ItemBatch(has_image=f.has_image[rows], attention_mask=mask[:, :n_text], attribute_ids=attrs[:, :n_attr])
        if self.image_raw is not None:
            b.image_raw = self.image_raw[views, rows]
        else:
            b.pixel_values = normalize_pixels(self.views[views, rows], self.config)
        if self.colour_raw is not None:
            b.colour_raw = self.colour_raw[views, rows]
        if self.text_raw is not None:
            b.text_raw = self.text_raw[rows, :n_text]
        else:
            b.input_ids = f.input_ids[rows, :n_text]
        return b

    @torch.no_grad()
    def fit_output(self, model: MoonItemEncoder, batch_size: int = 256) -> torch.Tensor | None:
        """Fit what `embed` serves (whitening, content projection) on every clean item; returns
        the items' content features (for the taste head) or None."""
        model.eval()
        z, content = [], []
        for i in range(0, len(self), batch_size):
            b = self.batch(np.arange(i, min(i + batch_size, len(self))))
            z.append(model(b, modes=("multimodal",)).multimodal)
            if model.uses_content:
                content.append(model.content_features(b, model.raw_tokens(b)))
        model.output.fit(torch.cat(z), torch.cat(content) if content else None)
        return torch.cat(content) if content else None

    @torch.no_grad()
    def embed_all(self, model: MoonItemEncoder, mode: str, dim: int, view: int = 0, batch_size: int = 256,
                  rows=None) -> torch.Tensor:
        model.eval()
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        out = [model.embed(self.batch(rows[i: i + batch_size], np.full(len(rows[i: i + batch_size]), view)),
                           mode, dim) for i in range(0, len(rows), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, dim)


def build_catalogue_cache(model: MoonItemEncoder, featurizer: ItemFeaturizer, items: pd.DataFrame, root: Path,
                          n_aug: int, seed: int, store_root=None, progress: bool = True) -> tuple[CatalogueCache, dict]:
    """(the cache of `items` with `n_aug` augmented views, tower-pass figures). With frozen towers
    the images are never held as pixels, and `store_root` reuses / extends the on-disk tower store."""
    was_training = model.training
    model.eval()
    stats = {"tower_store": str(store_root) if store_root else None}
    if model.config.freeze_image_tower:
        feats = featurize_in_chunks(featurizer, items, root, progress=progress, desc="tokenize items",
                                    load_images=False)
        images = image_outputs(model, items, root, n_aug, seed, image_store(model, store_root), progress=progress)
        feats.has_image, feats.bad_images = images.has_image, images.bad_images
        stats["image_items_computed"] = images.computed
    else:
        feats = featurize_in_chunks(featurizer, items, root, progress=progress)
        aug = augmented_views(items, root, feats, model.config.image_size, n_aug, seed, progress)
        images = None
    text_raw = None
    if model.config.freeze_text_tower:
        text_raw, stats["text_items_computed"] = text_outputs(model, feats, text_store(model, store_root),
                                                               progress=progress)
    model.train(was_training)
    cache = CatalogueCache(model, featurizer, feats, None if images is not None else aug, progress=progress,
                           images=images, text_raw=text_raw)
    return cache, stats
