"""Same-group recall@K: does an item's neighbourhood hold the items the user says belong with it?

The user's ground truth is a groups file (item_id, group_id: e.g. one product in several
colours) or a pairs file (item_id, item_id: e.g. substitutes). Both become, for every item
that has one, its set of positives (the rest of its group; its pair partners, either order).
Query = the item's embedding, gallery = the whole catalogue minus the query; a hit at K when a
positive ranks in the top K (ties counted against). Scored beside the trained encoder, on the
same queries: the frozen image tower and text tower alone (their pooled outputs, as served in
the encoder's content part) and random vectors (chance).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .cache import build_catalogue_cache
from .checkpoint import load_encoder
from .errors import EncoderError
from .runtime import set_threads


class GroundTruthFileError(EncoderError):
    """A --groups / --pairs file that cannot be read as the documented two columns."""


def read_ground_truth(path: str | Path, kind: str, item_ids: pd.Series) -> pd.DataFrame:
    """The two columns of a groups (item_id, group_id) or pairs (item_id, item_id) file, CSV or
    Parquet with a header row, item ids parsed like the catalogue's (`item_ids`). Unknown ids raise."""
    path = Path(path)
    if not path.exists():
        raise GroundTruthFileError(f"--{kind} file {path} does not exist")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    except Exception as e:
        raise GroundTruthFileError(f"cannot read --{kind} file {path} ({type(e).__name__}: {e}); give a CSV with a "
                                   "header row or a Parquet file") from None
    expected = "item_id, group_id" if kind == "groups" else "item_id, item_id (e.g. item_a, item_b)"
    if df.shape[1] != 2 or df.empty:
        raise GroundTruthFileError(f"--{kind} file {path} has columns {list(df.columns)} and {len(df)} rows; it needs "
                                   f"exactly two columns ({expected}) and at least one row")
    id_cols = [0] if kind == "groups" else [0, 1]
    out = pd.DataFrame({"a": df.iloc[:, 0], "b": df.iloc[:, 1]})
    for c in np.array(["a", "b"])[id_cols]:
        out[c] = _as_catalogue_ids(out[c], item_ids, path, kind)
    return out


def _as_catalogue_ids(values: pd.Series, item_ids: pd.Series, path, kind) -> pd.Series:
    if item_ids.dtype.kind in "iu":
        parsed = pd.to_numeric(values, errors="coerce")
        bad = values[parsed.isna() | (parsed != parsed.round())]
        if len(bad):
            raise GroundTruthFileError(f"--{kind} file {path}: item ids must be integers like the catalogue's; "
                                       f"got {bad.astype(str).head(5).tolist()}")
        values = parsed.astype(np.int64)
    else:
        values = values.astype(str)
    unknown = sorted(set(values) - set(item_ids))
    if unknown:
        raise GroundTruthFileError(f"--{kind} file {path}: {len(unknown)} item id(s) are not in the catalogue, e.g. "
                                   f"{unknown[:5]}; remove them or add the items to items.parquet")
    return values


def positives_by_row(truth: pd.DataFrame, kind: str, row_of: dict) -> dict[int, np.ndarray]:
    """Catalogue row -> rows of its positives (group members / pair partners), for rows that have any."""
    pos: dict[int, set] = {}
    if kind == "groups":
        for _, members in truth.groupby("b")["a"]:
            rows = {row_of[i] for i in members}
            for r in rows:
                if len(rows) > 1:
                    pos.setdefault(r, set()).update(rows - {r})
    else:
        for a, b in zip(truth["a"], truth["b"]):
            if a != b:
                pos.setdefault(row_of[a], set()).add(row_of[b])
                pos.setdefault(row_of[b], set()).add(row_of[a])
    if not pos:
        raise GroundTruthFileError(f"the --{kind} file gives no item a positive (every group has one item, or "
                                   "every pair pairs an item with itself)")
    return {r: np.fromiter(p, dtype=np.int64) for r, p in sorted(pos.items())}


def best_positive_ranks(emb: torch.Tensor, positives: dict[int, np.ndarray], desc: str, progress: bool,
                        chunk: int = 512) -> np.ndarray:
    """Per query row: rank (0 = top) of its best-ranked positive, the query itself excluded."""
    queries = np.fromiter(positives, dtype=np.int64)
    ranks = []
    for i in tqdm(range(0, len(queries), chunk), desc=desc, disable=not progress, unit="chunk", leave=False):
        q = queries[i: i + chunk]
        sims = emb[q] @ emb.T
        sims[torch.arange(len(q)), torch.as_tensor(q)] = float("-inf")
        best = torch.stack([sims[j, torch.as_tensor(positives[int(r)])].max() for j, r in enumerate(q)])
        ranks.append((sims >= best[:, None]).sum(1) - 1)
    return torch.cat(ranks).numpy()


def tower_embeddings(model, cache, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(image tower, text tower) vectors of every item: the towers' pooled outputs, L2-normalised
    (zeros for an item without an image)."""
    img, txt = [], []
    with torch.no_grad():
        for i in range(0, len(cache), batch_size):
            b = cache.batch(np.arange(i, min(i + batch_size, len(cache))))
            raw_img, raw_txt = model.raw_tokens(b)
            img.append(F.normalize(raw_img.float().mean(1), dim=-1) * b.has_image[:, None])
            m = b.attention_mask.unsqueeze(-1).float()
            txt.append(F.normalize((raw_txt.float() * m).sum(1) / m.sum(1).clamp(min=1.0), dim=-1))
    return torch.cat(img), torch.cat(txt)


def evaluate_groups(model_dir, dataset, truth: pd.DataFrame, kind: str, ks=(1, 10, 50), dim: int | None = None,
                    seed: int = 0, num_threads: int | None = None, tower_store=None, progress: bool = True) -> dict:
    """Same-group recall@K of the encoder in `model_dir` and of the image tower, text tower and
    random baselines. `truth`: read_ground_truth's (a, b) frame in the dataset's item ids."""
    t0 = time.time()
    set_threads(num_threads, verbose=progress)
    model, featurizer = load_encoder(model_dir)
    dim = model.config.check_dim(dim)
    items = dataset.items.sort_values("item_id").reset_index(drop=True)
    cache, _ = build_catalogue_cache(model, featurizer, items, dataset.root, 0, seed, tower_store, progress)
    positives = positives_by_row(truth, kind, {i: r for r, i in enumerate(items["item_id"].tolist())})
    image, text = tower_embeddings(model, cache)
    gen = torch.Generator().manual_seed(seed)
    methods = {"moon_encoder": cache.embed_all(model, "multimodal", dim), "image_tower": image, "text_tower": text,
               "random": F.normalize(torch.randn(len(items), dim, generator=gen), dim=-1)}
    results = {}
    for name, emb in methods.items():
        ranks = best_positive_ranks(emb.float(), positives, f"same-{kind} recall: {name}", progress)
        results[name] = {f"recall@{k}": float((ranks < k).mean()) for k in ks}
    n_q = len(positives)
    out = {"kind": kind, "dim": dim, "ks": list(ks), "n_pairs": n_q, "n_queries": n_q, "n_gallery": len(items),
           "mean_positives": float(np.mean([len(p) for p in positives.values()])), "methods": results,
           "seconds": round(time.time() - t0, 1), "ylabel": f"queries with a same-{kind[:-1]} item in the top K",
           "title": f"Same-{kind[:-1]} recall ({n_q} queries, gallery {len(items)}, dim {dim})"}
    if progress:
        print(f"same-{kind[:-1]} recall ({n_q} queries): " + "; ".join(
            f"{name} " + " ".join(f"{k}={v:.3f}" for k, v in r.items()) for name, r in results.items()))
    return out
