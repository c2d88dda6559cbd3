"""The model-input dict: the CTRData / CTRBatch names as TF tensors, its signature and checks.

    <sparse field>    int64   [B]
    <dense field>     float32 [B]
    <sequence field>  int64   [B, L]   L <= max_len
    hist_len          int64   [B]
    hist_<g>_len      int64   [B]         each sequence group g besides the main one (inputs.length_name)
    item_emb          float32 [B, D]      only with ModelInputs.moon_dim
    hist_emb          float32 [B, L, D]   only with ModelInputs.moon_dim
    label             float32 [B]         training / evaluation only
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..batch import BatchShapeError
from ..inputs import ModelInputs, length_name


def feature_specs(inputs: ModelInputs, with_label: bool = False) -> dict[str, tf.TensorSpec]:
    """name -> TensorSpec with a free batch (and history) dimension; the SavedModel signature."""
    specs = {f.name: tf.TensorSpec([None], tf.int64, name=f.name) for f in inputs.sparse}
    specs.update({n: tf.TensorSpec([None], tf.float32, name=n) for n in inputs.dense})
    specs.update({s.name: tf.TensorSpec([None, None], tf.int64, name=s.name) for s in inputs.sequences})
    for name in ["hist_len"] + [length_name(g) for g in inputs.sequence_groups]:
        specs[name] = tf.TensorSpec([None], tf.int64, name=name)
    if inputs.moon_dim is not None:
        specs["item_emb"] = tf.TensorSpec([None, inputs.moon_dim], tf.float32, name="item_emb")
        specs["hist_emb"] = tf.TensorSpec([None, None, inputs.moon_dim], tf.float32, name="hist_emb")
    if with_label:
        specs["label"] = tf.TensorSpec([None], tf.float32, name="label")
    return specs


def history_of_first_row(features: dict, inputs: ModelInputs) -> dict:
    """The history side (sequences, hist_len, hist_emb) of row 0 only, batch size 1: with
    shared_history (one request's candidates share the user's history) it is every row's
    history, so it is embedded once, not B times. As ctr_models.batch.CTRBatch.history_of_first_row."""
    names = [s.name for s in inputs.sequences] + ["hist_len"] + [length_name(g) for g in inputs.sequence_groups]
    names += ["hist_emb"] if inputs.moon_dim is not None else []
    return {n: features[n][:1] for n in names}


def check_features(features: dict, inputs: ModelInputs) -> None:
    """BatchShapeError naming the first missing or ill-shaped input (checked on static shapes,
    i.e. once per trace, not per batch)."""
    for name, spec in feature_specs(inputs).items():
        t = features.get(name)
        if t is None:
            what = "MOON embeddings" if name in ("item_emb", "hist_emb") else "field"
            raise BatchShapeError(f"features lack {name!r} ({what}); have {sorted(features)}")
        shape = t.shape
        if shape.rank is not None and shape.rank != spec.shape.rank:
            raise BatchShapeError(f"feature {name!r} has rank {shape.rank}, expected {spec.shape.rank} "
                                  f"({spec.shape.as_list()})")
        if name in ("item_emb", "hist_emb") and shape[-1] is not None and shape[-1] != inputs.moon_dim:
            raise BatchShapeError(f"{name} has dimension {shape[-1]}, the model was trained with d={inputs.moon_dim}")
        if spec.shape.rank == 2 and name != "item_emb" and shape[1] is not None and shape[1] > inputs.max_len:
            raise BatchShapeError(f"sequence {name!r} has length {shape[1]} > max_len {inputs.max_len}")


def to_features(batch, inputs: ModelInputs | None = None) -> dict[str, np.ndarray]:
    """A CTRBatch (torch) or a dict of arrays -> dict of contiguous numpy arrays in the TF dtypes.

    With `inputs`, only the model's inputs are kept (extra keys such as timestamp are dropped).
    """
    if hasattr(batch, "sparse") and hasattr(batch, "hist_len"):  # a CTRBatch, without importing torch here
        raw = {**batch.sparse, **batch.dense, **batch.hist, "hist_len": batch.hist_len,
               **{length_name(g): t for g, t in getattr(batch, "hist_lens", {}).items()}}
        for name in ("item_emb", "hist_emb", "label"):
            if getattr(batch, name) is not None:
                raw[name] = getattr(batch, name)
        raw = {k: v.detach().cpu().numpy() for k, v in raw.items()}
    else:
        raw = dict(batch)
    keep = set(feature_specs(inputs, with_label=True)) if inputs is not None else set(raw)
    out = {}
    for k, v in raw.items():
        if k not in keep:
            continue
        v = np.asarray(v)
        dtype = np.int64 if np.issubdtype(v.dtype, np.integer) else np.float32
        out[k] = np.ascontiguousarray(v, dtype=dtype)  # the serving batch's hist_emb is a broadcast view
    return out


def dummy_features(inputs: ModelInputs, n: int = 2) -> dict[str, tf.Tensor]:
    """A batch of n padding rows (every id 0, empty histories): builds a model's lazy layers."""
    out = {}
    for name, spec in feature_specs(inputs).items():
        shape = [n if d is None and i == 0 else (inputs.max_len if d is None else d)
                 for i, d in enumerate(spec.shape.as_list())]
        out[name] = tf.zeros(shape, spec.dtype)
    return out
