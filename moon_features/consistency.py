"""Training-serving consistency: the offline (training) path and the online (serving) path must
give the same score for the same (user, item) at the same moment.

It spans both paths, so it lives above them: serving never imports training.

The online store holds each user's latest state: the offline sequence table's closing row, just
after the user's last event. So the offline rows are stamped after every source's newest row
(`as_of`), where the as-of join returns exactly the materialized state; the online side scores
the same (user, item) pairs through CTRScorer. Scores must agree within `tolerance`; where they
do not, the report names the features that differ, so a failure says where to look.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from feast import FeatureStore

from ctr_models.data import CTRData

from .serving.batch import online_batch
from .serving.errors import ConsistencyError
from .serving.scorer import BACKEND_TOLERANCE, CTRScorer
from .spec import ITEM_PROFILE_VIEW, SEQUENCE_VIEW
from .store.markers import MarkerStore
from .store.repo import materialize_all, open_store
from .training.retrieval import training_data


@dataclass
class ConsistencyReport:
    rows: pd.DataFrame                    # user_id, item_id, event_timestamp, offline, online, diff
    tolerance: float
    backend: str
    differing_features: dict = field(default_factory=dict)  # feature -> rows where it differs

    @property
    def max_abs_diff(self) -> float:
        return float(self.rows["diff"].max()) if len(self.rows) else 0.0

    @property
    def mismatches(self) -> pd.DataFrame:
        return self.rows[self.rows["diff"] >= self.tolerance]

    @property
    def ok(self) -> bool:
        return len(self.rows) > 0 and len(self.mismatches) == 0

    def line(self) -> str:
        verdict = "consistent" if self.ok else f"{len(self.mismatches)} rows DIFFER"
        where = f"; differing features: {self.differing_features}" if self.differing_features else ""
        return (f"{verdict}: {len(self.rows)} rows over {self.rows['user_id'].nunique()} users on {self.backend}, "
                f"max |offline - online| = {self.max_abs_diff:.2e} (tolerance {self.tolerance:.0e}){where}")

    def raise_for_mismatch(self) -> None:
        if not self.ok:
            shown = self.mismatches.head(5).to_dict("records")
            raise ConsistencyError(f"{self.line()}. First rows: {shown}. If hist_item_id differs, events were "
                                   "pushed online after the last materialization: compare before live traffic, "
                                   "or re-materialize")


def _source(store: FeatureStore, view: str) -> str:
    return store.get_feature_view(view).batch_source.path


def latest_source_time(store: FeatureStore, views) -> pd.Timestamp:
    """The newest event_timestamp over the views' offline sources."""
    newest = None
    for view in views:
        col = pq.read_table(_source(store, view), columns=["event_timestamp"]).column("event_timestamp")
        m = pc.max(col).as_py()
        if m is not None:
            m = pd.Timestamp(m)
            m = m.tz_localize("UTC") if m.tzinfo is None else m
            newest = m if newest is None or m > newest else newest
    if newest is None:
        raise ConsistencyError("the offline sources are empty: nothing to compare")
    return newest


def sample_rows(store: FeatureStore, n_rows: int, seed: int = 0, extra_users=(), extra_items=()) -> pd.DataFrame:
    """n (user, item) pairs: users that have a sequence, items from the catalogue; stamped after
    every source's newest row so the as-of join returns the state the online store holds."""
    rng = np.random.default_rng(seed)
    users = np.unique(pq.read_table(_source(store, SEQUENCE_VIEW), columns=["user_id"]).column(0).to_numpy())
    items = np.unique(pq.read_table(_source(store, ITEM_PROFILE_VIEW), columns=["item_id"]).column(0).to_numpy())
    if not len(users) or not len(items):
        raise ConsistencyError("the sequence or item sources are empty: nothing to compare")
    # Few users with several items each: the online side scores a user's items in one request.
    n_users = max(1, min(len(users), n_rows // 4 or 1))
    chosen = rng.choice(users, size=n_users, replace=False)
    u = np.concatenate([np.asarray(extra_users, np.int64), chosen[rng.integers(0, n_users, n_rows)]])
    i = np.concatenate([np.asarray(extra_items, np.int64), rng.choice(items, size=n_rows)])
    k = min(len(u), len(i))
    views = [fv.name for fv in store.list_feature_views()]
    when = latest_source_time(store, views) + pd.Timedelta(seconds=1)
    return pd.DataFrame({"user_id": u[:k].astype(np.int64), "item_id": i[:k].astype(np.int64),
                         "event_timestamp": pd.Series([when] * k, dtype=f"datetime64[us, UTC]"),
                         "label": np.zeros(k, dtype=np.int64)})


def with_sampled_context(rows: pd.DataFrame, spec, seed: int = 0) -> pd.DataFrame:
    """rows plus a raw value per context feature: vocabulary values, nulls and one value outside
    the vocabulary, so that both paths' coding of known, null and unseen values is compared."""
    rng = np.random.default_rng([seed, 1])
    out = rows.copy()
    for f in spec.context:
        choices = [*f.vocabulary, None, "__unseen__"]
        out[f.name] = [choices[i] for i in rng.integers(0, len(choices), len(rows))]
    return out


def _request_value(v):
    """An entity-row cell as JSON would carry it: None for NaN / NA, a Python int for numbers."""
    if v is None or pd.isna(v):
        return None
    return int(v) if isinstance(v, (float, np.floating, np.integer)) else v


def request_context(rows: pd.DataFrame, idx, spec) -> list[tuple]:
    """The /score `context` of each row in idx, as a hashable tuple of (name, value) pairs."""
    names = [f.name for f in spec.context]
    return [tuple((n, _request_value(rows[n].iloc[r])) for n in names) for r in idx]


def _check_materialized(store: FeatureStore, spec) -> None:
    """Refuse to compare against views the online store never received: every online row would be
    missing (zeros), and the mismatches would point at features, not at the step left out."""
    markers = MarkerStore(store.config)
    try:
        missing = markers.missing_views({ref.split(":")[0] for ref in spec.feature_refs()})
    finally:
        markers.close()
    if missing:
        raise ConsistencyError(
            f"the online store holds no rows of {missing} (never materialized, or wiped): run "
            f"`moon-features materialize --repo {store.repo_path}` (every view; `materialize-embeddings` "
            "writes the embedding views only), or pass --materialize")


def _offline_scores(scorer: CTRScorer, data: CTRData) -> np.ndarray:
    with torch.inference_mode():
        out = [torch.sigmoid(scorer.model(b)) for b in data.batches(1024)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def _differing_features(scorer: CTRScorer, data: CTRData, rows: pd.DataFrame, bad: np.ndarray) -> dict:
    """For mismatching rows, which batch fields differ between the two paths (at most 20 rows)."""
    counts: dict[str, int] = {}
    for r in bad[:20]:
        user, item = int(rows.user_id.iloc[r]), int(rows.item_id.iloc[r])
        off = data.batch(np.array([r]))
        context = dict(request_context(rows, [r], scorer.spec)[0])
        on = online_batch(scorer.lookup(user, [item]), scorer.spec, scorer.inputs, user, context)
        pairs = [(f"sparse.{k}", off.sparse[k], on.sparse[k]) for k in off.sparse]
        pairs += [(f"dense.{k}", off.dense[k], on.dense[k]) for k in off.dense]
        pairs += [(k, off.hist[k], on.hist[k]) for k in off.hist] + [("hist_len", off.hist_len, on.hist_len)]
        pairs += [(f"hist_lens.{g}", off.hist_lens[g], on.hist_lens[g]) for g in off.hist_lens]
        if off.item_emb is not None:
            pairs += [("item_emb", off.item_emb, on.item_emb), ("hist_emb", off.hist_emb, on.hist_emb)]
        for name, a, b in pairs:
            if a.shape != b.shape or not torch.equal(a, b.to(a.dtype)):
                counts[name] = counts.get(name, 0) + 1
    return counts


def _online_scores(scorer: CTRScorer, rows: pd.DataFrame) -> np.ndarray:
    """Each user's rows with one context as one /score request, through CTRScorer."""
    online = np.zeros(len(rows), dtype=np.float32)
    for user, idx in rows.groupby("user_id", sort=False).indices.items():
        requests: dict[tuple, list[int]] = {}
        for r, context in zip(idx, request_context(rows, idx, scorer.spec)):
            requests.setdefault(context, []).append(r)
        for context, part in requests.items():
            # rows hold the repo's codes; the scorer takes the caller's own ids (idmap.py)
            online[part] = scorer.score(scorer.ids.users.decode([user])[0],
                                        scorer.ids.items.decode(rows.item_id.to_numpy()[part]), dict(context))
    return online


def check_consistency(store: FeatureStore, model_artifact, n_rows: int = 200, seed: int = 0,
                      tolerance: float | None = None, rows: pd.DataFrame | None = None,
                      backend: str = "torch") -> ConsistencyReport:
    """Score sampled rows offline (get_historical_features -> CTRData, the torch model) and online
    (CTRScorer with the model `backend`: torch, onnx or onnx-int8).

    The online store must hold the materialized state of the offline sources. `tolerance`
    defaults to the backend's (BACKEND_TOLERANCE: 1e-5, int8 1e-3). Returns the report; call
    `raise_for_mismatch()` to turn a failure into ConsistencyError.
    """
    tolerance = BACKEND_TOLERANCE.get(backend, 1e-5) if tolerance is None else tolerance
    scorer = CTRScorer(store, model_artifact, backend=backend)
    _check_materialized(store, scorer.spec)
    if rows is None:
        rows = with_sampled_context(sample_rows(store, n_rows, seed), scorer.spec, seed)
    rows = rows.reset_index(drop=True)
    data = training_data(store, scorer.spec, rows, use_moon=scorer.use_moon)
    offline = _offline_scores(scorer, data)
    online = _online_scores(scorer, rows)
    out = rows[["user_id", "item_id", "event_timestamp"]].assign(
        offline=offline, online=online, diff=np.abs(offline.astype(np.float64) - online))
    report = ConsistencyReport(out, tolerance, scorer.reader.backend)
    bad = np.flatnonzero(out["diff"].to_numpy() >= tolerance)
    if len(bad):
        report.differing_features = _differing_features(scorer, data, rows, bad)
    scorer.close()
    return report


def check_repo_consistency(repo: str | Path, model_dir: str | Path, n_rows: int = 200, config_file=None,
                           seed: int = 0, tolerance: float | None = None, materialize: bool = False,
                           backend: str = "torch") -> ConsistencyReport:
    store = open_store(repo, config_file)
    if materialize:
        materialize_all(store)
    return check_consistency(store, Path(model_dir), n_rows=n_rows, seed=seed, tolerance=tolerance,
                             backend=backend)
