"""Baselines measured in the same run as the encoder, on the same items and pairs:
MiniLM title embeddings (all-MiniLM-L6-v2, mean pooled, as sentence-transformers does) and
EfficientNet-lite0 ImageNet features (global average pooled). The randomly initialised
encoder is built in evaluate.py from the trained encoder's config."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import normalize_pixels, open_image, to_uint8, augment
from .efficientnet_lite import IMAGE_MEAN, IMAGE_STD, EfficientNetLite0, load_imagenet_weights
from .pretrained import minilm_path, quiet_loading


@torch.no_grad()
def minilm_title_embeddings(titles: list[str], batch_size: int = 128, progress: bool = True) -> torch.Tensor:
    from transformers import AutoModel, AutoTokenizer

    path = str(minilm_path())
    with quiet_loading():
        tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    out = []
    for i in tqdm(range(0, len(titles), batch_size), desc="baseline: MiniLM titles", disable=not progress):
        enc = tok([str(t) for t in titles[i: i + batch_size]], padding=True, truncation=True, max_length=64,
                  return_tensors="pt")
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        out.append(F.normalize((h * m).sum(1) / m.sum(1), dim=-1))
    return torch.cat(out)


class _Cfg:  # normalize_pixels only needs the statistics
    image_mean, image_std = IMAGE_MEAN, IMAGE_STD


@torch.no_grad()
def efficientnet_image_embeddings(items, root, size: int = 160, augment_seed: int | None = None,
                                  batch_size: int = 64, progress: bool = True) -> tuple[torch.Tensor, np.ndarray]:
    """(N, 1280) L2-normalised features (zeros for items without a readable image) and the
    has-image mask. With augment_seed, features of near-duplicate (augmented) images."""
    net = load_imagenet_weights(EfficientNetLite0()).eval()
    rng = np.random.default_rng(augment_seed) if augment_seed is not None else None
    feats = torch.zeros(len(items), 1280)
    has = np.zeros(len(items), dtype=bool)
    paths, ids = items["image_path"].tolist(), items["item_id"].tolist()
    desc = "baseline: EfficientNet-lite0" + (" (augmented)" if rng is not None else "")
    for i in tqdm(range(0, len(items), batch_size), desc=desc, disable=not progress):
        px, rows = [], []
        for r in range(i, min(i + batch_size, len(items))):
            if paths[r] is None or (isinstance(paths[r], float) and np.isnan(paths[r])):
                continue
            try:
                im = open_image(root / paths[r], int(ids[r]), size)
            except Exception:
                continue
            px.append(to_uint8(augment(im, rng) if rng is not None else im, size))
            rows.append(r)
        if rows:
            fmap = net(normalize_pixels(torch.stack(px), _Cfg))
            feats[rows] = F.normalize(fmap.mean((2, 3)), dim=-1)
            has[rows] = True
    return feats, has
