"""A catalogue's model inputs held in memory for a run (training / evaluation).

Images are decoded once (plus a few augmented near-duplicate views). When a pretrained tower
is frozen its outputs never change, so they are computed once here too (stored as float16 to
halve memory) and every training step only runs the trainable part of the encoder.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import FeaturizedItems, ItemFeaturizer, normalize_pixels
from .modeling import ItemBatch, MoonItemEncoder, colour_histogram


class CatalogueCache:
    def __init__(self, model: MoonItemEncoder, featurizer: ItemFeaturizer, items: FeaturizedItems,
                 augmented: torch.Tensor | None = None, chunk: int = 128, progress: bool = True):
        self.featurizer, self.items, self.config = featurizer, items, model.config
        self.item_ids = items.item_ids
        self.row_of = {int(i): r for r, i in enumerate(items.item_ids)}
        views = [items.pixels] + ([] if augmented is None else list(augmented))
        self.views = torch.stack(views)  # (V, N, 3, S, S) uint8; view 0 is the clean image
        self.image_raw = self.text_raw = self.colour_raw = None
        if self.config.colour_bins:  # (V, N, bins^3): cheap, and the frozen-tower path has no pixels
            self.colour_raw = torch.stack([colour_histogram(normalize_pixels(v, self.config), self.config)
                                           for v in self.views])
        was_training = model.training
        model.eval()
        with torch.no_grad():
            if self.config.freeze_image_tower:
                # only rows with an image (the others are masked out of every embedding)
                with_image = torch.nonzero(items.has_image).squeeze(1)
                raw = None
                for v in range(len(self.views)):
                    for i in tqdm(range(0, len(with_image), chunk), disable=not progress,
                                  desc=f"image tower (view {v})", unit="chunk"):
                        rows = with_image[i: i + chunk]
                        out = model.image_raw_tokens(normalize_pixels(self.views[v, rows], self.config)).half()
                        if raw is None:
                            raw = torch.zeros(len(self.views), len(items.item_ids), *out.shape[1:], dtype=torch.half)
                        raw[v, rows] = out
                if raw is None:  # no item has an image: shape the cache from one blank image
                    blank = torch.zeros(1, 3, self.config.image_size, self.config.image_size, dtype=torch.uint8)
                    out = model.image_raw_tokens(normalize_pixels(blank, self.config)).half()
                    raw = torch.zeros(len(self.views), len(items.item_ids), *out.shape[1:], dtype=torch.half)
                self.image_raw = raw
            if self.config.freeze_text_tower:
                # titles are short: run the tower on length-sorted chunks cut to their longest text
                # (same outputs for the real tokens, a fraction of the work of max_length padding)
                lengths = items.attention_mask.sum(1)
                order = torch.argsort(lengths, descending=True, stable=True)
                self.text_raw = None
                for i in tqdm(range(0, len(order), chunk), disable=not progress, desc="text tower", unit="chunk"):
                    rows = order[i: i + chunk]
                    n = max(1, int(lengths[rows].max()))
                    out = model.text_raw_tokens(items.input_ids[rows, :n], items.attention_mask[rows, :n]).half()
                    if self.text_raw is None:
                        self.text_raw = torch.zeros(len(order), items.input_ids.shape[1], out.shape[-1],
                                                    dtype=torch.half)
                    self.text_raw[rows, :n] = out
        model.train(was_training)

    @property
    def n_views(self) -> int:
        return self.views.shape[0]

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
    def fit_output(self, model: MoonItemEncoder, batch_size: int = 256) -> None:
        """Fit what `embed` serves (whitening, content projection) on every clean item."""
        model.eval()
        z, content = [], []
        for i in range(0, len(self), batch_size):
            b = self.batch(np.arange(i, min(i + batch_size, len(self))))
            z.append(model(b, modes=("multimodal",)).multimodal)
            if model.config.content_dims:
                content.append(model.content_features(b, model.raw_tokens(b)))
        model.output.fit(torch.cat(z), torch.cat(content) if content else None)

    @torch.no_grad()
    def embed_all(self, model: MoonItemEncoder, mode: str, dim: int, view: int = 0, batch_size: int = 256,
                  rows=None) -> torch.Tensor:
        model.eval()
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        out = [model.embed(self.batch(rows[i: i + batch_size], np.full(len(rows[i: i + batch_size]), view)),
                           mode, dim) for i in range(0, len(rows), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, dim)
