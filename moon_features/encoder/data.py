"""Turning catalogue rows into model inputs: images, titles, categorical attributes.

`ItemFeaturizer` is the encoder's processor: it is rebuilt from a saved encoder folder
(config + tokenizer) so that training, the embedding job and evaluation featurise items the
same way. `CatalogueCache` holds a whole catalogue's decoded inputs in memory for training
and evaluation (posters are decoded once per run, not once per epoch).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageEnhance
from tqdm.auto import tqdm

from .configuration import MoonEncoderConfig
from .errors import EncoderError, ImageLoadError
from .modeling import ItemBatch
from .pretrained import minilm_path


# ---- images -----------------------------------------------------------------------------------
def open_image(path: Path, item_id: int, size: int) -> Image.Image:
    """Decode an RGB image, letting JPEG decode at reduced scale (much faster for posters)."""
    try:
        im = Image.open(path)
        im.draft("RGB", (size * 2, size * 2))
        return im.convert("RGB")
    except FileNotFoundError as e:
        raise ImageLoadError(item_id, path, "file not found") from e
    except Exception as e:  # PIL raises many types for truncated / non-image files
        raise ImageLoadError(item_id, path, f"{type(e).__name__}: {e}") from e


def to_uint8(im: Image.Image, size: int) -> torch.Tensor:
    """Resize the whole image to size x size (posters are squashed, not cropped: the title
    lettering near the edges is part of the signal). uint8 keeps the cache 4x smaller."""
    arr = np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def augment(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A near-duplicate of an image: random crop (70-100% area), brightness/contrast jitter and
    a JPEG re-encode -- what re-uploads and thumbnails of the same product look like."""
    w, h = im.size
    scale = rng.uniform(0.7, 1.0)
    cw, ch = max(1, int(w * np.sqrt(scale))), max(1, int(h * np.sqrt(scale)))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = im.crop((x0, y0, x0 + cw, y0 + ch))
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.75, 1.25))
    im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.75, 1.25))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(rng.integers(30, 80)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def normalize_pixels(pixels_uint8: torch.Tensor, config: MoonEncoderConfig) -> torch.Tensor:
    mean = torch.tensor(config.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(config.image_std).view(1, 3, 1, 1)
    return (pixels_uint8.float() / 255.0 - mean) / std


# ---- attributes -------------------------------------------------------------------------------
def attribute_values(value) -> list[str]:
    """A cell of an attribute column as a list of strings (lists, arrays and 'a|b' strings are
    multi-valued; missing values give an empty list)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if isinstance(value, float) and np.isnan(value):
        return []
    s = str(value)
    return [v for v in s.split("|") if v] if "|" in s else [s]


def build_attribute_vocab(items: pd.DataFrame, columns: list[str], max_values: int = 2000) -> dict[str, list[str]]:
    """Per categorical column, its values by descending frequency (capped); unseen values at
    inference map to the column's out-of-vocabulary token."""
    vocab = {}
    for col in columns:
        if col not in items.columns:
            raise EncoderError(f"categorical attribute {col!r} is declared in dataset.json but missing from items")
        counts = pd.Series([v for cell in items[col] for v in attribute_values(cell)]).value_counts()
        vocab[col] = sorted(counts.index[:max_values].tolist(), key=lambda v: (-counts[v], v))
    return vocab


# ---- featurizer -------------------------------------------------------------------------------
@dataclass
class FeaturizedItems:
    """Inputs of N items, images as uint8 (normalised when a batch is built)."""

    item_ids: np.ndarray
    pixels: torch.Tensor          # (N, 3, S, S) uint8, zeros where there is no image
    has_image: torch.Tensor       # (N,) bool
    input_ids: torch.Tensor       # (N, L)
    attention_mask: torch.Tensor  # (N, L)
    attribute_ids: torch.Tensor   # (N, A)
    bad_images: dict[int, str] = field(default_factory=dict)  # item_id -> reason


class ItemFeaturizer:
    def __init__(self, config: MoonEncoderConfig, tokenizer):
        self.config, self.tokenizer = config, tokenizer
        self._attr_index: dict[str, dict[str, int]] = {}
        offset = 1  # 0 is padding
        for col, values in config.attribute_vocab.items():
            # slot `offset` is the column's out-of-vocabulary token
            self._attr_index[col] = {v: offset + 1 + i for i, v in enumerate(values)}
            self._attr_index[col][None] = offset
            offset += len(values) + 1

    @classmethod
    def load(cls, model_dir: str | Path, config: MoonEncoderConfig) -> "ItemFeaturizer":
        from transformers import AutoTokenizer

        return cls(config, AutoTokenizer.from_pretrained(str(model_dir)))

    @staticmethod
    def default_tokenizer(config: MoonEncoderConfig):
        from transformers import AutoTokenizer

        if "clip" == config.text_tower:
            return AutoTokenizer.from_pretrained(config.clip_path)
        return AutoTokenizer.from_pretrained(str(minilm_path()))

    def attribute_ids(self, items: pd.DataFrame) -> torch.Tensor:
        out = torch.zeros(len(items), self.config.max_attribute_tokens, dtype=torch.long)
        for r, (_, row) in enumerate(items.iterrows()):
            ids = []
            for col, index in self._attr_index.items():
                values = attribute_values(row.get(col)) if col in items.columns else []
                ids += [index.get(v, index[None]) for v in values]
            ids = ids[: self.config.max_attribute_tokens]
            out[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def texts(self, items: pd.DataFrame) -> list[str]:
        """The text each item's text tower reads: `config.text_columns` joined with ". " (missing,
        empty and "unknown" values skipped; multi-valued 'a|b' cells as "a, b")."""
        cols = [c for c in self.config.text_columns if c in items.columns]
        out = []
        for row in zip(*(items[c].tolist() for c in cols)):
            parts = [", ".join(attribute_values(v)) for v in row]
            out.append(". ".join(p for p in parts if p and p.lower() != "unknown"))
        return out

    def tokenize(self, titles: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer([str(t) if t is not None else "" for t in titles], padding="max_length",
                             truncation=True, max_length=self.config.max_text_length, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    def featurize(self, items: pd.DataFrame, root: Path, load_images: bool = True) -> FeaturizedItems:
        """Featurise rows of items.parquet; a missing or corrupt image is recorded in
        `bad_images` and the item falls back to text + attributes only."""
        size = self.config.image_size
        # without images (their tower outputs come from frozen.py) no pixel memory is held
        pixels = torch.zeros(len(items), 3, size if load_images else 0, size if load_images else 0, dtype=torch.uint8)
        has_image = torch.zeros(len(items), dtype=torch.bool)
        bad: dict[int, str] = {}
        for r, (item_id, rel) in enumerate(zip(items["item_id"].tolist(), items["image_path"].tolist())):
            if not load_images or rel is None or (isinstance(rel, float) and np.isnan(rel)):
                continue
            try:
                pixels[r] = to_uint8(open_image(Path(root) / rel, int(item_id), size), size)
                has_image[r] = True
            except ImageLoadError as e:
                bad[int(item_id)] = e.reason
        input_ids, attention_mask = self.tokenize(self.texts(items))
        return FeaturizedItems(items["item_id"].to_numpy(np.int64), pixels, has_image, input_ids,
                               attention_mask, self.attribute_ids(items), bad)

    def batch(self, f: FeaturizedItems, rows=None, pixels: torch.Tensor | None = None) -> ItemBatch:
        """An ItemBatch for the given rows (all when None); `pixels` overrides the images
        (e.g. augmented views of the same rows)."""
        rows = slice(None) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        px = f.pixels[rows] if pixels is None else pixels
        mask, attrs = f.attention_mask[rows], f.attribute_ids[rows]
        n_text = max(1, int(mask.sum(1).max()))  # drop all-padding columns (same result, less work)
        n_attr = max(1, int((attrs != 0).sum(1).max()))
        return ItemBatch(has_image=f.has_image[rows], attention_mask=mask[:, :n_text],
                         attribute_ids=attrs[:, :n_attr], pixel_values=normalize_pixels(px, self.config),
                         input_ids=f.input_ids[rows, :n_text])


def featurize_in_chunks(featurizer: ItemFeaturizer, items: pd.DataFrame, root: Path, chunk: int = 256,
                        desc: str = "decode items", progress: bool = True, load_images: bool = True) -> FeaturizedItems:
    parts = [featurizer.featurize(items.iloc[i: i + chunk], root, load_images=load_images)
             for i in tqdm(range(0, len(items), chunk), desc=desc, disable=not progress, unit="chunk")]
    bad = {k: v for p in parts for k, v in p.bad_images.items()}
    return FeaturizedItems(np.concatenate([p.item_ids for p in parts]), torch.cat([p.pixels for p in parts]),
                           torch.cat([p.has_image for p in parts]), torch.cat([p.input_ids for p in parts]),
                           torch.cat([p.attention_mask for p in parts]),
                           torch.cat([p.attribute_ids for p in parts]), bad)


def view_pixels(im: Image.Image, item_id: int, n_aug: int, seed: int, size: int) -> list[torch.Tensor]:
    """The clean image and `n_aug` near-duplicates, uint8 (3, S, S). The augmentations are drawn
    from (seed, item id) alone, so an item's views do not depend on the rest of the catalogue (the
    tower store can reuse them per item, a resumed run sees the same views)."""
    rng = np.random.default_rng([seed, int(item_id) & 0x7FFFFFFFFFFFFFFF])
    return [to_uint8(im, size)] + [to_uint8(augment(im, rng), size) for _ in range(n_aug)]


def augmented_views(items: pd.DataFrame, root: Path, f: FeaturizedItems, size: int, views: int, seed: int,
                    progress: bool = True) -> torch.Tensor:
    """(views, N, 3, S, S) uint8 near-duplicates of every image (zeros where none)."""
    out = torch.zeros(views, len(items), 3, size, size, dtype=torch.uint8)
    paths = items["image_path"].tolist()
    for r in tqdm(range(len(items)), desc="augment images", disable=not progress or views == 0, unit="img"):
        if not bool(f.has_image[r]):
            continue
        im = open_image(root / paths[r], int(f.item_ids[r]), size)
        for v, px in enumerate(view_pixels(im, int(f.item_ids[r]), views, seed, size)[1:]):
            out[v, r] = px
    return out
