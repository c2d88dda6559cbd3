"""deepctr-torch interop: the same features, deepctr-torch's feature columns and input dict.

ModelInputs -> SparseFeat / VarLenSparseFeat / DenseFeat, and a CTRBatch (or CTRData, or the
dict of numpy arrays CTRData is built from) -> the {name: ndarray} dict deepctr-torch's
`fit` / `predict` take. So a user can train deepctr-torch's DIN or DeepFM on the features
retrieved for ctr_models, and the benchmarks use it as the peer baseline.

Depends only on ctr_models types (no Feast) so it can be used without a feature store.

Naming: deepctr-torch's DIN finds a target's history by the name "hist_<target>", so each
SequenceField is exposed under that name whatever its own name is; the history length is
exposed as "hist_len". Ids outside a field's vocabulary become the padding id 0 here, because
deepctr-torch's embedding lookup would fail on them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

from ctr_models.batch import CTRBatch
from ctr_models.data import CTRData
from ctr_models.inputs import ModelInputs

LENGTH_NAME = "hist_len"
MOON_NAME = "item_emb"  # the target's frozen MOON vector as a DenseFeat of dimension moon_dim


class DeepCTRAdapterError(ValueError):
    """The feature spec cannot be expressed as deepctr-torch feature columns."""


def deepctr_sequence_name(target: str) -> str:
    return f"hist_{target}"


def feature_columns(inputs: ModelInputs, embedding_dim: int = 16, *, include_sequences: bool = True,
                    sequence_combiner: str = "mean", include_moon: bool = False) -> list[Any]:
    """deepctr-torch feature columns for `inputs`.

    Sequences share their target's embedding table (embedding_name=target), as in ModelInputs.
    sequence_combiner only matters for models that pool VarLenSparseFeat themselves (DeepFM);
    DIN replaces the pooling of its history columns by attention.
    include_moon adds the target's MOON embedding as a DenseFeat (deepctr-torch has no notion of
    per-history-item dense vectors, so the history's MOON vectors cannot be passed).
    """
    cols: list[Any] = [SparseFeat(f.name, vocabulary_size=f.vocab_size, embedding_dim=embedding_dim,
                                  dtype="int64") for f in inputs.sparse]
    cols += [DenseFeat(n, 1) for n in inputs.dense]
    if include_sequences and inputs.sequence_groups:  # deepctr-torch shares one length name
        raise DeepCTRAdapterError(f"the deepctr-torch adapter maps one behaviour sequence; these inputs also have "
                                  f"{list(inputs.sequence_groups)}: pass include_sequences=False, or compare on a "
                                  "repository built without `features build --sequence`")
    if include_sequences:
        vocab = {f.name: f.vocab_size for f in inputs.sparse}
        for s in inputs.sequences:
            if s.target not in vocab:
                raise DeepCTRAdapterError(f"sequence {s.name!r} targets {s.target!r}, which is not a sparse field")
            cols.append(VarLenSparseFeat(
                SparseFeat(deepctr_sequence_name(s.target), vocabulary_size=vocab[s.target],
                           embedding_dim=embedding_dim, embedding_name=s.target, dtype="int64"),
                maxlen=inputs.max_len, combiner=sequence_combiner, length_name=LENGTH_NAME))
    if include_moon:
        if inputs.moon_dim is None:
            raise DeepCTRAdapterError("include_moon=True but ModelInputs.moon_dim is None")
        cols.append(DenseFeat(MOON_NAME, inputs.moon_dim))
    return cols


def history_feature_list(inputs: ModelInputs) -> list[str]:
    """The `history_feature_list` argument of deepctr_torch.models.DIN."""
    return [s.target for s in inputs.sequences]


def _pad_to(a: np.ndarray, max_len: int) -> np.ndarray:
    # deepctr-torch slices its input by the declared maxlen, so shorter arrays must be padded
    if a.shape[1] == max_len:
        return a
    out = np.zeros((a.shape[0], max_len), dtype=a.dtype)
    out[:, :a.shape[1]] = a
    return out


def to_deepctr_input(data: CTRBatch | CTRData | dict[str, np.ndarray], inputs: ModelInputs, *,
                     include_sequences: bool = True, include_moon: bool = False,
                     moon_table: np.ndarray | None = None, item_field: str = "item_id") -> dict[str, np.ndarray]:
    """The deepctr-torch input dict for `data`, matching `feature_columns(inputs, ...)`.

    For include_moon with a CTRBatch the vectors come from batch.item_emb; with arrays or
    CTRData they are gathered from `moon_table` (or CTRData's own table).
    """
    if isinstance(data, CTRBatch):
        data.validate(inputs)
        cols = {**{k: v.numpy() for k, v in data.sparse.items()}, **{k: v.numpy() for k, v in data.dense.items()},
                **{k: v.numpy() for k, v in data.hist.items()}, LENGTH_NAME: data.hist_len.numpy()}
        moon = data.item_emb.numpy() if include_moon and data.item_emb is not None else None
    else:
        if isinstance(data, CTRData):
            if moon_table is None and data.moon_table is not None:
                moon_table = data.moon_table.numpy()
            data = data.arrays
        cols, moon = data, None
    x: dict[str, np.ndarray] = {}
    for f in inputs.sparse:
        ids = np.asarray(cols[f.name]).astype(np.int64)
        x[f.name] = np.where((ids >= 0) & (ids < f.vocab_size), ids, 0)
    for n in inputs.dense:
        x[n] = np.asarray(cols[n], dtype=np.float32)
    if include_sequences and inputs.sequence_groups:  # deepctr-torch shares one length name
        raise DeepCTRAdapterError(f"the deepctr-torch adapter maps one behaviour sequence; these inputs also have "
                                  f"{list(inputs.sequence_groups)}: pass include_sequences=False, or compare on a "
                                  "repository built without `features build --sequence`")
    if include_sequences:
        vocab = {f.name: f.vocab_size for f in inputs.sparse}
        for s in inputs.sequences:
            ids = _pad_to(np.asarray(cols[s.name]).astype(np.int64), inputs.max_len)
            x[deepctr_sequence_name(s.target)] = np.where((ids >= 0) & (ids < vocab[s.target]), ids, 0)
        x[LENGTH_NAME] = np.minimum(np.asarray(cols[LENGTH_NAME], dtype=np.int64), inputs.max_len)
    if include_moon:
        if moon is None:
            if moon_table is None:
                raise DeepCTRAdapterError("include_moon=True needs batch.item_emb or a moon_table")
            ids = x[item_field]
            moon = np.asarray(moon_table, dtype=np.float32)[np.where(ids < len(moon_table), ids, 0)]
        x[MOON_NAME] = moon
    return x
