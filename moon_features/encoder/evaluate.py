"""MOON's intermediate metric: image-based search recall, plus near-duplicate robustness.

Co-engagement recall@K: the query is the image-only embedding of item A, the gallery the
multimodal embeddings of all catalogue items (A itself excluded), a hit when the co-engaged
item B ranks in the top K. Near-duplicate: the query is the image-only embedding of an
augmented copy of an item's image; a hit when that item ranks in the top K.
Baselines run on the same items, pairs and augmented images in the same call.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

from .baselines import efficientnet_image_embeddings, minilm_title_embeddings
from .cache import CatalogueCache
from .checkpoint import load_encoder
from .data import augmented_views, featurize_in_chunks
from .errors import EncoderError
from .modeling import MoonItemEncoder
from .runtime import set_threads

EVAL_AUGMENT_OFFSET = 7919  # eval augmentations never reuse the training run's augmentation seed


def target_ranks(query: torch.Tensor, gallery: torch.Tensor, targets: np.ndarray, exclude: np.ndarray | None = None,
                 chunk: int = 1024) -> np.ndarray:
    """Rank (0 = top) of each query's target row in the gallery; ties counted against."""
    ranks = []
    for i in range(0, len(query), chunk):
        sims = query[i: i + chunk] @ gallery.T
        rows = torch.arange(len(sims))
        if exclude is not None:
            sims[rows, torch.as_tensor(exclude[i: i + chunk])] = float("-inf")
        target_sim = sims[rows, torch.as_tensor(targets[i: i + chunk])]
        ranks.append((sims >= target_sim[:, None]).sum(1) - 1)
    return torch.cat(ranks).numpy() if ranks else np.zeros(0, dtype=np.int64)


def recall_at_k(query: torch.Tensor, gallery: torch.Tensor, targets: np.ndarray, ks, exclude: np.ndarray | None = None,
                chunk: int = 1024) -> dict[int, float]:
    """Fraction of queries whose target row ranks within the top k (ties counted against)."""
    return recall_from_ranks(target_ranks(query, gallery, targets, exclude, chunk), ks)


def recall_from_ranks(rank: np.ndarray, ks) -> dict[int, float]:
    return {k: float((rank < k).mean()) if len(rank) else float("nan") for k in ks}


def paired_recall_difference(ranks_a: np.ndarray, ranks_b: np.ndarray, k: int = 10, n_boot: int = 2000,
                             seed: int = 0) -> dict:
    """recall@k of A minus that of B on the same queries, with a 95 % paired bootstrap interval
    (queries resampled with replacement, both methods judged on the same resample)."""
    diff = (ranks_a < k).astype(np.float64) - (ranks_b < k).astype(np.float64)
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"k": k, "difference": float(diff.mean()), "ci95": [float(lo), float(hi)],
            "a_only": int(((ranks_a < k) & (ranks_b >= k)).sum()), "b_only": int(((ranks_b < k) & (ranks_a >= k)).sum())}


def _scores(q_pairs, g, q_dup, g_dup, a_rows, b_rows, dup_rows, ks) -> tuple[dict, np.ndarray]:
    """(figures, ranks of the pairs' targets): the ranks feed the paired comparisons."""
    ranks = target_ranks(q_pairs, g, b_rows, exclude=a_rows)
    res = {f"recall@{k}": v for k, v in recall_from_ranks(ranks, ks).items()}
    if q_dup is not None:
        res.update({f"near_duplicate@{k}": v for k, v in recall_at_k(q_dup, g_dup, dup_rows, (1, 10)).items()})
    return res, ranks


def image_query_rows(pairs: pd.DataFrame, item_ids, has_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Catalogue rows (of A, of B) for the pairs whose query item A has a readable image; pairs
    with an item outside the catalogue or an image-less A are dropped (they cannot be queried)."""
    row_of = {int(i): r for r, i in enumerate(item_ids)}
    rows = [(row_of[a], row_of[b]) for a, b in zip(pairs["item_a"].astype(int), pairs["item_b"].astype(int))
            if a in row_of and b in row_of and has_image[row_of[a]]]
    a_rows, b_rows = (np.array(c, dtype=np.int64) for c in zip(*rows)) if rows else (np.zeros(0, np.int64),) * 2
    return a_rows, b_rows


class _Scorer:
    """Scores methods on one set of image queries (pairs, near-duplicates, extra pair sets) and
    keeps each method's figures and per-query ranks."""

    def __init__(self, a_rows, b_rows, dup_rows, extra: dict, ks):
        self.a_rows, self.b_rows, self.dup_rows, self.extra, self.ks = a_rows, b_rows, dup_rows, extra, ks
        self.methods: dict[str, dict] = {}
        self.pair_ranks: dict[str, np.ndarray] = {}

    def add(self, method, q_all, g, q_dup=None, g_dup=None):
        """Queries: rows of `q_all`, gallery `g`; near-duplicate queries `q_dup` against `g_dup` when given."""
        res, self.pair_ranks[method] = _scores(q_all[self.a_rows], g, q_dup, g_dup, self.a_rows, self.b_rows,
                                               self.dup_rows, self.ks)
        for name, (ea, eb) in self.extra.items():
            res.update({f"{name}/recall@{k}": v for k, v in recall_at_k(q_all[ea], g, eb, self.ks, exclude=ea).items()})
        self.methods[method] = res

    def add_encoder(self, method: str, m: MoonItemEncoder, featurizer, feats, aug, dim: int):
        cache = CatalogueCache(m, featurizer, feats, aug, progress=False)
        g = cache.embed_all(m, "multimodal", dim)
        q_img = cache.embed_all(m, "image", dim)
        q_dup = cache.embed_all(m, "image", dim, view=1, rows=self.dup_rows)
        self.add(method, q_img, g, q_dup, g)


def _add_baselines(scorer: _Scorer, model, featurizer, feats, aug, dim, items, root, aug_seed, image_size, seed,
                   progress):
    """A randomly initialised copy of the encoder, MiniLM on titles (and on the encoder's text when
    that is more than the title), EfficientNet-lite0 ImageNet features."""
    torch.manual_seed(seed)
    scorer.add_encoder("random_init_encoder", MoonItemEncoder(model.config).eval(), featurizer, feats, aug, dim)
    t = minilm_title_embeddings(items["title"].tolist(), progress=progress)
    scorer.add("minilm_title", t, t)
    texts = featurizer.texts(items)
    if texts != [str(x) if x is not None else "" for x in items["title"]]:
        t = minilm_title_embeddings(texts, progress=progress)
        scorer.add("minilm_text", t, t)
    e, _ = efficientnet_image_embeddings(items, root, image_size, progress=progress)
    e_aug, _ = efficientnet_image_embeddings(items, root, image_size, augment_seed=aug_seed, progress=progress)
    scorer.add("efficientnet_lite0_imagenet", e, e, e_aug[scorer.dup_rows], e)


def _add_popularity(scorer: _Scorer, popularity, items, seed):
    """One score per item: a 1-d "embedding", every query the same (tiny jitter breaks ties by row)."""
    counts = pd.Series(popularity).reindex(items["item_id"]).fillna(0).to_numpy(np.float64)
    jitter = np.random.default_rng(seed).random(len(counts)) * 1e-3
    g = torch.as_tensor(np.log1p(counts) + jitter, dtype=torch.float32)[:, None]
    scorer.add("popularity", torch.ones(len(items), 1), g)


def evaluate_encoder(model_dir, dataset, pairs, ks=(1, 10, 50), dim: int | None = None, baselines: bool = True,
                     seed: int = 0, num_threads: int | None = 1, baseline_image_size: int = 160,
                     progress: bool = True, extra_pairs: dict | None = None,
                     popularity: pd.Series | None = None) -> dict:
    """Recall@K on `pairs` (DataFrame item_a, item_b; e.g. pairs.heldout_pairs) for the encoder in
    `model_dir` and, with baselines=True, a randomly initialised copy of it, MiniLM title
    embeddings, MiniLM embeddings of the text the encoder reads (when that is more than the
    title) and EfficientNet-lite0 ImageNet features. Pairs whose item A has no readable
    image are dropped (an image query needs an image); the count is reported. `extra_pairs`
    (name -> pairs) are scored with the same embeddings as `<name>/recall@K`.

    `popularity` (item_id -> e.g. training-period interaction count) adds the reference method
    `popularity`: the same gallery ranking for every query, by that count. It is not a content
    method (it reads the log, not the item), so it is reported beside the baselines, not as one."""
    t0 = time.time()
    set_threads(num_threads, verbose=progress)
    model, featurizer = load_encoder(model_dir)
    dim = model.config.check_dim(dim)
    items = dataset.items.sort_values("item_id").reset_index(drop=True)
    feats = featurize_in_chunks(featurizer, items, dataset.root, progress=progress)
    aug_seed = seed + EVAL_AUGMENT_OFFSET
    aug = augmented_views(items, dataset.root, feats, model.config.image_size, 1, aug_seed, progress)
    has_image = feats.has_image.numpy()
    a_rows, b_rows = image_query_rows(pairs, feats.item_ids, has_image)
    if len(a_rows) == 0:
        raise EncoderError("no evaluation pair has an item A with a readable image; evaluation needs image queries")
    extra = {name: image_query_rows(p, feats.item_ids, has_image) for name, p in (extra_pairs or {}).items()}
    scorer = _Scorer(a_rows, b_rows, np.flatnonzero(has_image), extra, ks)
    scorer.add_encoder("moon_encoder", model, featurizer, feats, aug, dim)
    if baselines:
        _add_baselines(scorer, model, featurizer, feats, aug, dim, items, dataset.root, aug_seed, baseline_image_size,
                       seed, progress)
    if popularity is not None:
        _add_popularity(scorer, popularity, items, seed)
    result = {"dim": dim, "ks": list(ks), "n_pairs": int(len(a_rows)),
              "n_extra_pairs": {name: int(len(ea)) for name, (ea, _) in extra.items()}, "n_gallery": int(len(items)),
              "n_queries_near_duplicate": int(len(scorer.dup_rows)), "chance@10": 10 / max(len(items) - 1, 1),
              "image_size": model.config.image_size, "baseline_image_size": baseline_image_size,
              "seconds": round(time.time() - t0, 1), "methods": scorer.methods,
              # the trained encoder against each other method, query by query (recall@10)
              "paired_vs_encoder": {name: paired_recall_difference(scorer.pair_ranks["moon_encoder"], r, 10, seed=seed)
                                    for name, r in scorer.pair_ranks.items() if name != "moon_encoder"}}
    if progress:
        print("image-search recall: " + "; ".join(
            f"{name} " + " ".join(f"{k}={v:.3f}" for k, v in r.items()) for name, r in scorer.methods.items()))
    return result


def write_report(result: dict, out_dir: str | Path, stem: str = "encoder_quality") -> tuple[Path, Path]:
    """`<stem>.json` with every figure and `<stem>.png`: grouped recall@K bars per method."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / f"{stem}.json", out_dir / f"{stem}.png"
    json_path.write_text(json.dumps(result, indent=2, default=str))
    ev = result.get("evaluation", result)
    methods, ks = ev["methods"], ev["ks"]
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    width = 0.8 / len(methods)
    for i, (name, r) in enumerate(methods.items()):
        vals = [r[f"recall@{k}"] for k in ks]
        bars = ax.bar(np.arange(len(ks)) + i * width, vals, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(np.arange(len(ks)) + width * (len(methods) - 1) / 2, [f"recall@{k}" for k in ks])
    ax.set_ylabel(ev.get("ylabel", "held-out co-engagement pairs found"))
    ax.set_title(ev.get("title", f"Image-based search recall ({ev['n_pairs']} pairs, gallery {ev['n_gallery']}, "
                                 f"dim {ev['dim']})"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    return json_path, png_path
