"""The one batching path: numpy columns in, model arrays and CTRBatch out, offline and online alike.

Training (moon_features.training.retrieval) turns the historical join's Arrow table into numpy
columns once; serving (moon_features.serving.batch) hands the online lookup's numpy arrays over
directly, with no Arrow round trip per request. Both then call the functions here, so id
clipping, padding, truncation to the last max_len items and the history-attribute codes are the
same code on both sides. Layering: this module needs only the spec and ctr_models' batch type;
it never imports Feast, training or serving.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ctr_models.batch import CTRBatch
from ctr_models.inputs import ModelInputs, length_name

from .fields import SequenceSpec
from .spec import FeatureSpec


def clip_ids(ids: np.ndarray, max_id: int) -> np.ndarray:
    """int64 ids with anything outside 1..max_id mapped to 0 (padding / unknown)."""
    ids = np.asarray(ids).astype(np.int64)
    return np.where((ids > 0) & (ids <= max_id), ids, 0)


def pad_ragged(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, max_len: int,
               max_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Ragged int lists (row i = values[starts[i] : starts[i] + lengths[i]]) -> (int64 [n, max_len]
    left-aligned and zero-padded, kept lengths [n]).

    Longer lists keep their most recent (last) max_len items; ids above max_id become 0 (unknown).
    """
    values = np.asarray(values).astype(np.int64, copy=False)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    kept = np.minimum(lengths, max_len)
    first = starts + lengths - kept
    row = np.repeat(np.arange(n), kept)
    pos = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    out = np.zeros((n, max_len), dtype=np.int64)
    out[row, pos] = values[np.repeat(first, kept) + pos]
    out[out > max_id] = 0
    return out, kept


def row_arrays(columns: Mapping[str, np.ndarray], spec: FeatureSpec) -> dict[str, np.ndarray]:
    """The per-row model arrays of the spec's typed fields (ids, profiles, context codes, dense)
    from null-free numpy columns; no history. Context columns hold codes already
    (ContextFeature.encode of the raw values)."""
    arrays = {}
    for f in spec.fields():
        if f.kind == "id":  # ids beyond the spec's range (new since `features build`) are unknown
            arrays[f.name] = clip_ids(columns[f.name], f.vocab_size - 1)
        elif f.kind in ("categorical", "context"):
            arrays[f.name] = np.asarray(columns[f.name]).astype(np.int64)  # a copy: Arrow buffers are read-only
        elif f.kind == "dense":
            arrays[f.name] = standardised(spec, f.name, columns[f.name])
    return arrays


def standardised(spec: FeatureSpec, name: str, values) -> np.ndarray:
    """A dense feature as every model reads it, float32: standardised with the statistics
    `features build` recorded. Raw prices (5-200) beside unit-norm embeddings and 1e-4-scale id
    embeddings slowed DIN's training (docs/concepts.md)."""
    mean, std = spec.dense_stats.get(name, (0.0, 1.0))
    return ((np.asarray(values, dtype=np.float64) - mean) / std).astype(np.float32)


def history_arrays(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, spec: FeatureSpec,
                   attribute_codes=None) -> dict[str, np.ndarray]:
    """hist_item_id [n, max_len], hist_len [n] and the history-attribute codes of ragged history lists.

    attribute_codes: anything indexable by an id array (a codes[item_id] table offline, the
    request's codes online) giving the sequence attribute's code of each history item.
    """
    hist, kept = pad_ragged(values, starts, lengths, spec.max_len, spec.max_item_id)
    arrays = {"hist_item_id": hist, "hist_len": kept}
    if spec.sequence_attribute:
        arrays[f"hist_{spec.sequence_attribute}"] = attribute_codes[hist]
    return arrays


def one_history(item_ids: np.ndarray, spec: FeatureSpec, attribute_codes=None) -> dict[str, np.ndarray]:
    """history_arrays of a single history list (one user's): every array has a leading dimension of 1."""
    item_ids = np.asarray(item_ids, dtype=np.int64)
    return history_arrays(item_ids, np.zeros(1, np.int64), np.array([len(item_ids)]), spec, attribute_codes)


def sequence_arrays(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, spec: FeatureSpec,
                    seq: SequenceSpec) -> dict[str, np.ndarray]:
    """hist_<name>_item_id [n, max_len] and hist_<name>_len [n] of a behaviour sequence besides the
    main one (spec.sequences; item ids only), padded and truncated as the main history."""
    hist, kept = pad_ragged(values, starts, lengths, spec.max_len, spec.max_item_id)
    return {seq.field_name: hist, length_name(seq.name): kept}


def one_user_sequences(histories: Mapping[str, np.ndarray], spec: FeatureSpec) -> dict[str, np.ndarray]:
    """sequence_arrays of one user's list per sequence besides the main one (name -> item ids,
    oldest first; absent: empty), each with a leading dimension of 1."""
    out = {}
    for seq in spec.sequences:
        ids = np.asarray(histories.get(seq.name, ()), dtype=np.int64)
        out.update(sequence_arrays(ids, np.zeros(1, np.int64), np.array([len(ids)]), spec, seq))
    return out


def shared_history_batch(arrays: Mapping[str, np.ndarray], history: Mapping[str, np.ndarray],
                         inputs: ModelInputs, n: int, item_emb: np.ndarray | None = None,
                         hist_emb: np.ndarray | None = None) -> CTRBatch:
    """A CTRBatch of n rows that share one history (one user's request).

    arrays: per-row arrays [n]; history: one_history's arrays [1, ...] (and one_user_sequences'
    for the sequences besides the main one); hist_emb: float32 [L, D] of that one history. The history side is broadcast as views instead of n copies, and
    `shared_history` lets the model embed it once, not per row.
    """
    batch = CTRBatch(
        sparse={f.name: torch.from_numpy(arrays[f.name]) for f in inputs.sparse},
        hist_len=torch.from_numpy(history["hist_len"]).expand(n),
        dense={name: torch.from_numpy(arrays[name]) for name in inputs.dense},
        hist={s.name: torch.from_numpy(history[s.name]).expand(n, -1) for s in inputs.sequences},
        hist_lens={g: torch.from_numpy(history[length_name(g)]).expand(n) for g in inputs.sequence_groups},
        shared_history=True,
    )
    if inputs.moon_dim is not None:
        if item_emb is None:
            item_emb = np.zeros((n, inputs.moon_dim), dtype=np.float32)
        if hist_emb is None:
            hist_emb = np.zeros((history["hist_item_id"].shape[1], inputs.moon_dim), dtype=np.float32)
        batch.item_emb = torch.from_numpy(np.ascontiguousarray(item_emb, dtype=np.float32))
        batch.hist_emb = torch.from_numpy(np.ascontiguousarray(hist_emb, dtype=np.float32)).unsqueeze(0).expand(n, -1, -1)
    return batch
