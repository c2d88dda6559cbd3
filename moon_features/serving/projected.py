"""The projected item view: DIN's per-item work materialized once, read by serving per request.

`serving.projected_build.build_projected_items` (CLI: `moon-features export --projected-items`) computes every item's row
(ctr_models.item_projection: the item's attention layout, both item sides of the attention's
first layer, its part of the DNN's first layer, its unit MOON vector) from what the online store
holds for it, writes them to data/item_projected_v<N>.parquet, registers the view
`item_projected_v<N>` (tagged with the fingerprint of the weights that produced it) and a feature
service pinning it, materializes the view, and pins (view, version, fingerprint, service) in the
artifact folder (projected_items.json). The scorer then refuses, at load, an artifact whose pin
does not match the store or its own weights (ProjectedItemsMismatchError), so training and
serving cannot drift; a request reads the user row and one row per item instead of the item's
profile and raw MOON vector, and computes only the per-pair and per-user work.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from feast import FeatureStore, FeatureView

from ctr_models.artifact import ModelArtifact
from ctr_models.inputs import SequenceGroupsUnsupportedError
from ctr_models.item_projection import ItemProjection

from ..batching import clip_ids, pad_ragged, standardised
from ..spec import ITEM_PROFILE_VIEW, FeatureSpec
from ..store import redis_codec as codec
from ..store.definitions import EMBEDDING_DIM_TAG
from ..store.layout import ViewLayout, versioning_enabled
from ..store.markers import MarkerStore
from ..store.online_reader import OnlineReader, is_redis
from .errors import ProjectedItemsMismatchError, ProjectedItemsUnsupportedError

PIN_FILE = "projected_items.json"
VIEW_PREFIX = "item_projected_v"
FEATURE = "projected"
FINGERPRINT_TAG = "moon.projection_fingerprint"
VIEW_TAG = "moon.projected_view"
REBUILD = "moon-features export --projected-items --repo {repo} --model-dir {model_dir}"


def read_pin(model_dir: str | Path | None) -> dict | None:
    path = Path(model_dir) / PIN_FILE if model_dir is not None else None
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def projection_of(artifact: ModelArtifact, spec: FeatureSpec) -> ItemProjection:
    try:
        return ItemProjection(artifact.model.eval(), tuple(spec.item_dense))
    except SequenceGroupsUnsupportedError as e:
        raise ProjectedItemsUnsupportedError(f"{e}. Serve this model without a projected item view "
                                             "(plain torch or onnx backend)") from None


# --- serving ------------------------------------------------------------------------------------
def check_pin(pin: dict, store: FeatureStore, projection: ItemProjection, spec: FeatureSpec, model_dir) -> FeatureView:
    """The pinned view, after checking it against the store and the artifact's weights."""
    fix = REBUILD.format(repo=store.repo_path, model_dir=model_dir)
    views = {fv.name: fv for fv in store.list_feature_views()}
    view = views.get(pin["view"])
    if view is None:
        raise ProjectedItemsMismatchError(f"the artifact pins the projected item view {pin['view']} but project "
                                          f"{store.config.project!r} has no such view; run `{fix}`")
    if projection.fingerprint != pin["fingerprint"]:
        raise ProjectedItemsMismatchError(
            f"the artifact's weights (fingerprint {projection.fingerprint}) are not the ones {pin['view']} was built "
            f"from ({pin['fingerprint']}): the model changed after the view was built; run `{fix}`")
    if view.tags.get(FINGERPRINT_TAG) != pin["fingerprint"] or int(view.tags.get(EMBEDDING_DIM_TAG, -1)) != projection.width:
        raise ProjectedItemsMismatchError(
            f"{pin['view']} in the store was built from weights {view.tags.get(FINGERPRINT_TAG)} (width "
            f"{view.tags.get(EMBEDDING_DIM_TAG)}), the artifact pins {pin['fingerprint']} (width {projection.width}); run `{fix}`")
    services = {s.name: s for s in store.list_feature_services()}
    service = services.get(pin["feature_service"])
    if service is None or service.tags.get(VIEW_TAG) != pin["view"]:
        raise ProjectedItemsMismatchError(f"feature service {pin['feature_service']} is missing or does not pin "
                                          f"{pin['view']}; run `{fix}`")
    now = source_markers(store, spec)
    changed = sorted(v for v, stamp in pin.get("sources", {}).items() if now.get(v) != stamp)
    if changed:
        raise ProjectedItemsMismatchError(
            f"{', '.join(changed)} were materialized again (or wiped) after {pin['view']} was built from them: its "
            f"rows may be stale; run `{fix}`")
    return view


def source_markers(store: FeatureStore, spec: FeatureSpec) -> dict[str, str]:
    """The materialization markers of the item views a projected view is computed from (store/markers.py)."""
    views = [ITEM_PROFILE_VIEW] + [e.view_name for e in spec.embeddings]
    markers = MarkerStore(store.config)
    try:
        marked = markers.read()
    finally:
        markers.close()
    return {v: marked.get(v, "") for v in views}


class ProjectedItems:
    """One request on the projected item view: the user row (OnlineReader.user_features), then the
    candidates' and history items' rows in one pipelined read, then ItemProjection's forward."""

    def __init__(self, store: FeatureStore, reader: OnlineReader, projection: ItemProjection, view: FeatureView,
                 spec: FeatureSpec, runtime: str = "torch", threads: int = 1):
        """runtime: torch, or onnx (the forward exported to onnxruntime at load, fp32)."""
        self.store, self.reader, self.projection, self.spec = store, reader, projection, spec
        self._onnx = None
        if runtime == "onnx":
            from .onnx_model import OnnxProjectionModel

            self._onnx = OnnxProjectionModel(projection, threads)
        self.view = view.name
        self.layout = ViewLayout.of(view, versioning_enabled(store.config))
        self._redis = None
        if is_redis(store):
            from ..store.redis_connection import RedisTransport

            self._redis = RedisTransport(store.config.online_store)
        self.project = store.config.project

    def rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(float32 [n, width], found [n]) of the view for item ids."""
        if not len(ids):
            return np.zeros((0, self.projection.width), np.float32), np.zeros(0, bool)
        if self._redis is None:
            got = self.store.get_online_features(features=[f"{self.view}:{FEATURE}"],
                                                 entity_rows=[{"item_id": int(i)} for i in ids]).to_dict()[FEATURE]
            found = np.array([v is not None for v in got])
            out = np.zeros((len(ids), self.projection.width), np.float32)
            out[found] = [v for v in got if v is not None]
            return out, found
        replies = self._redis.hmget_many([(codec.redis_keys("item_id", ids, self.project), self.layout.fields)])
        return self.layout.features[0].decode([r[0] for r in replies])

    def fill_missing(self, rows: np.ndarray, found: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Rows of items the view lacks, as the plain path scores them: the id's embedding, zero features."""
        if found.all():
            return rows
        p, n = self.projection, int((~found).sum())
        sparse = {f: torch.zeros(n, dtype=torch.int64) for f in p.item_fields}
        sparse["item_id"] = torch.from_numpy(codes[~found])
        emb = torch.zeros(n, self.spec.embedding_dim) if self.spec.embeddings else None
        rows = rows.copy()
        zero = {d: torch.from_numpy(standardised(self.spec, d, np.zeros(n))) for d in p.item_dense}
        rows[~found] = p.rows(sparse, zero, emb, torch.zeros(n)).numpy()
        return rows

    def request_part(self, user_code: int, profile: dict, context_arrays: dict) -> torch.Tensor:
        p = self.projection
        sparse = {"user_id": torch.from_numpy(clip_ids(np.array([user_code]), self.spec.max_user_id))}
        sparse.update({f.name: torch.tensor([int(profile.get(f.name, 0))]) for f in self.spec.user_categorical})
        sparse.update({k: torch.from_numpy(v[:1]) for k, v in context_arrays.items()})
        dense = {n: torch.from_numpy(standardised(self.spec, n, [float(profile.get(n, 0.0))]))
                 for n in self.spec.user_dense}
        return p.request_part({k: sparse[k] for k in p.request_fields}, dense)

    def prepare(self, user_code: int, codes: np.ndarray, context_arrays: dict) -> dict:
        """One request's model inputs (request part, candidate and history rows) and result fields."""
        t0 = time.perf_counter()
        user = self.reader.user_features(user_code)
        hist, kept = pad_ragged(user.hist_item_ids, np.zeros(1, np.int64), np.array([len(user.hist_item_ids)]),
                                self.spec.max_len, self.spec.max_item_id)
        hist = hist[0, :int(kept[0])]
        uniq, inverse = np.unique(np.concatenate([codes, hist]), return_inverse=True)
        rows, found = self.rows(uniq)
        t1 = time.perf_counter()
        found &= uniq != 0  # id 0 (unknown, or beyond the spec in a history) is the all-zero item
        rows = self.fill_missing(rows, found, np.where(uniq <= self.spec.max_item_id, uniq, 0))
        rows = torch.from_numpy(rows)[torch.from_numpy(inverse)]
        complete = rows[:, -1].numpy() > 0.5
        return {"inputs": (self.request_part(user_code, user.profile, context_arrays), rows[:len(codes)],
                           rows[len(codes):]),
                "item_found": complete[:len(codes)], "user_found": user.found, "history_length": len(hist),
                "history_missing": int((~complete[len(codes):]).sum()),
                "timings": {"lookup": t1 - t0, "batch": time.perf_counter() - t1}}

    def forward(self, inputs: tuple) -> np.ndarray:
        """float32 click probabilities from prepare()'s inputs."""
        if self._onnx is not None:
            return self._onnx.scores(inputs)
        return torch.sigmoid(self.projection(*inputs)).numpy()

    def score(self, user_code: int, codes: np.ndarray, context_arrays: dict, lock) -> dict:
        """Scores and the ScoreResult fields of one request (item ids already mapped to codes);
        `lock` holds the forward (one at a time per scorer, as CTRScorer.run_model)."""
        out = self.prepare(user_code, codes, context_arrays)
        t = time.perf_counter()
        with lock:
            out["scores"] = self.forward(out.pop("inputs"))
        out["timings"]["model"] = time.perf_counter() - t
        return out

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
