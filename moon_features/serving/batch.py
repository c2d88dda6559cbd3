"""One ranking request's CTRBatch from an OnlineLookup, built by the training path's own code.

The online lookup's numpy arrays are laid out as the columns of the feature table the historical
join returns (one row per candidate: user_id, item_id, profile columns) and handed to
`batching.row_arrays`; the user's one history goes through `batching.one_history` once and is
shared by every row (a broadcast view, `CTRBatch.shared_history`). So padding, truncation to the
last max_len items, id clipping and the history-attribute codes are computed by the same
functions offline and online, with no Arrow round trip per request. The request's context
becomes the coded context columns of those rows (`context_columns`, the same
ContextFeature.encode that codes the entity rows' columns in training). Only the MOON vectors differ
in origin: offline they are gathered from the version's table, online they come from the same
version's rows in the lookup.
"""
from __future__ import annotations

import numpy as np

from ctr_models.batch import CTRBatch
from ctr_models.inputs import ModelInputs

from ..batching import one_history, one_user_sequences, row_arrays, shared_history_batch
from ..spec import FeatureSpec
from ..store.online_reader import OnlineLookup
from .errors import ContextError


class RequestAttributeCodes:
    """`codes[ids]` for the history items of one request (what `item_attribute_table` answers
    offline for every item), from the codes the lookup read; ids outside the request map to 0."""

    def __init__(self, item_ids: np.ndarray, codes: np.ndarray):
        order = np.argsort(item_ids, kind="stable")
        self._ids = np.asarray(item_ids, dtype=np.int64)[order]
        self._codes = np.asarray(codes, dtype=np.int64)[order]

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self._ids):
            return np.zeros(ids.shape, dtype=np.int64)
        pos = np.clip(np.searchsorted(self._ids, ids), 0, len(self._ids) - 1)
        hit = (self._ids[pos] == ids) & (ids != 0)  # 0 is padding / unknown: never a code
        return np.where(hit, self._codes[pos], 0)


def feature_columns(lookup: OnlineLookup, spec: FeatureSpec, user_id: int) -> dict[str, np.ndarray]:
    """The online lookup as the historical join's columns, one row per candidate in request order,
    without the history (the history is one list for all rows: see online_batch)."""
    cand = lookup.candidates
    n = len(cand.item_ids)
    profile = lookup.user.profile
    cols = {"user_id": np.full(n, user_id, dtype=np.int64), "item_id": cand.item_ids}
    for f in spec.fields():
        if f.kind not in ("categorical", "dense"):
            continue  # ids above; context from the request (context_columns); history apart
        if f.group == "item":
            cols[f.name] = cand.profiles[f.name]
        elif f.kind == "categorical":
            cols[f.name] = np.full(n, int(profile.get(f.name, 0)), dtype=np.int64)
        else:
            cols[f.name] = np.full(n, float(profile.get(f.name, 0.0)), dtype=np.float32)
    return cols


def history_embeddings(lookup: OnlineLookup, padded: np.ndarray, kept: int, dim: int) -> np.ndarray:
    """float32 [L, D]: the lookup's vectors at the positions pad_sequences kept (the last `kept`
    items), zero where the padded id is 0 (padding, or an id beyond the spec), as offline."""
    out = np.zeros((len(padded), dim), dtype=np.float32)
    hist = lookup.history
    if kept and hist.embeddings is not None:
        start = len(hist.item_ids) - kept
        out[:kept] = hist.embeddings[start:start + kept]
        out[:kept][padded[:kept] == 0] = 0.0
    return out


def context_columns(spec: FeatureSpec, context: dict | None, n: int) -> dict[str, np.ndarray]:
    """The request's context as the entity rows' coded context columns, one value for all n rows.

    Every context feature of the model must be present: a key left out is a ContextError naming
    it (a client that forgot one would otherwise be scored as "unknown" without notice); send
    null for a value that is not known, which is code 0, as a null in the training column. A key
    the model lacks is a ContextError too. A value outside the vocabulary is code 0 (unknown).
    """
    context = context or {}
    names = [f.name for f in spec.context]
    unknown, missing = sorted(set(context) - set(names)), [k for k in names if k not in context]
    if unknown:
        raise ContextError(f"context keys {unknown} are not context features of this model "
                           f"(it has {names or 'none'})")
    if missing:
        raise ContextError(f"the request's context lacks {missing}: this model was trained with the context "
                           f"features {names}; send each (null when the value is not known)")
    out = {}
    for f in spec.context:
        value = context[f.name]
        if isinstance(value, bool) or not (value is None or isinstance(value, (str, int, np.integer))):
            raise ContextError(f"context[{f.name!r}] must be an integer, a string or null, got {type(value).__name__}")
        out[f.name] = np.full(n, f.encode([value])[0], dtype=np.int64)
    return out


def online_batch(lookup: OnlineLookup, spec: FeatureSpec, inputs: ModelInputs, user_id: int,
                 context: dict | None = None) -> CTRBatch:
    """The CTRBatch the training path would build for (user, candidate) rows at "now"."""
    n = len(lookup.candidates.item_ids)
    codes = None
    if spec.sequence_attribute:
        codes = RequestAttributeCodes(lookup.history.item_ids, lookup.history.profiles[spec.sequence_attribute])
    arrays = row_arrays({**feature_columns(lookup, spec, user_id), **context_columns(spec, context, n)}, spec)
    history = {**one_history(lookup.user.hist_item_ids, spec, codes),
               **one_user_sequences(lookup.user.histories, spec)}  # the sequences besides the main one
    hist_emb = None
    if inputs.moon_dim is not None:
        hist_emb = history_embeddings(lookup, history["hist_item_id"][0], int(history["hist_len"][0]), inputs.moon_dim)
    return shared_history_batch(arrays, history, inputs, n, item_emb=lookup.candidates.embeddings, hist_emb=hist_emb)
