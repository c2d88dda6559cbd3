"""CTRScorer: (user, candidates) -> click probabilities, read from the online store.

Loading checks, once, that the artifact was trained on what the store serves: the same feature
spec (vocabularies, id ranges, max_len, ...) and the same embedding views (versions and
dimensions, in the same order), registered in the store's registry. A request then makes one `OnlineReader.lookup` (user and
candidates, and the history items through the reader's Lua script, in one round trip; a
second only where the reader falls back), builds the batch with the
training path's code (serving.batch) and runs the model once under inference_mode.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from feast import FeatureStore

from ctr_models.artifact import ModelArtifact, artifact_files, from_pretrained
from ctr_models.batch import CTRBatch

from ..idmap import DatasetIds
from ..spec import FeatureSpec, IdMapMismatchError
from ..store.configs import DATA_DIR
from ..store.definitions import embedding_spec_of
from ..store.errors import OnlineStoreUnavailableError
from ..store.online_reader import OnlineLookup, OnlineReader
from .allocator import retain_freed_memory
from .batch import context_columns, online_batch
from .errors import ModelStoreMismatchError, ProjectedItemsMismatchError, ServingError, TooManyCandidatesError
from .projected import PIN_FILE, ProjectedItems, check_pin, projection_of, read_pin

# torch: the artifact's nn.Module; onnx / onnx-int8: its serving graph in onnxruntime (fp32 /
# dynamic int8 weights), exported at load. Scores agree within BACKEND_TOLERANCE of torch's.
MODEL_BACKENDS = ("torch", "onnx", "onnx-int8")
BACKEND_TOLERANCE = {"torch": 1e-5, "onnx": 1e-5, "onnx-int8": 1e-3}


class ModelBackendError(ServingError, ValueError):
    """An unknown model backend, or one whose runtime (the onnx extra) is not installed."""


@dataclass
class ScoreResult:
    """Scores in request order plus what the lookup could not find."""

    item_ids: np.ndarray           # [n], the caller's ids as requested (int64, or str for a string-id repo)
    scores: np.ndarray             # float32 [n] click probabilities
    item_found: np.ndarray         # bool [n]; False: unknown item, scored with zero features
    user_found: bool               # False: unknown user, scored with an empty history
    history_length: int            # history items the model saw (after truncation to max_len)
    history_missing: int = 0      # history items the store had no features for (scored as zeros)
    timings: dict = field(default_factory=dict)  # seconds: lookup, batch, model

    @property
    def unknown_item_ids(self) -> list[int]:
        return self.item_ids[~self.item_found].tolist()


def artifact_version(model_dir: str | Path | None, artifact: ModelArtifact) -> str:
    """A stable id of the weights: `<model_type>-<sha256 of the artifact files, 12 hex>`."""
    h = hashlib.sha256()
    if model_dir is not None:
        for path in artifact_files(model_dir):
            if path.name != PIN_FILE:  # the projected view's pin, written after training: not the weights
                h.update(path.read_bytes())
    else:
        for key, tensor in sorted(artifact.model.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
    return f"{artifact.model.config.model_type}-{h.hexdigest()[:12]}"


def check_artifact_against_store(artifact: ModelArtifact, store: FeatureStore, store_spec: FeatureSpec) -> FeatureSpec:
    """The artifact's trained spec, after checking it against the store; ModelStoreMismatchError otherwise."""
    recorded = artifact.extra.get("feature_spec")
    if recorded is None:
        raise ModelStoreMismatchError("the model artifact records no feature_spec in its extra; train it with "
                                      "`moon-features train` (train_from_feast) so serving can check its features")
    trained = FeatureSpec.from_dict(recorded)
    try:
        trained.check_compatible(store_spec.for_model(bool(trained.embeddings)), what="feature store")
    except (ModelStoreMismatchError, IdMapMismatchError):  # the id-map one keeps its own name
        raise
    except ValueError as e:  # SpecMismatchError: re-raise under the serving name, same message
        raise ModelStoreMismatchError(str(e)) from None
    if artifact.inputs != trained.model_inputs(use_moon=bool(trained.embeddings)):
        raise ModelStoreMismatchError("the artifact's model inputs do not follow from its recorded feature_spec; "
                                      "the artifact was edited or saved by another tool: retrain it")
    check_recorded_versions(artifact.extra, trained)
    views = {fv.name: fv for fv in store.list_feature_views()}
    for emb in trained.embeddings:
        name = emb.view_name
        if name not in views:
            have = sorted(v for v in views if v.startswith("item_moon_embedding_"))
            raise ModelStoreMismatchError(
                f"the model was trained on {name} but project {store.config.project!r} has no such view "
                f"(embedding views: {have or 'none'}); apply the repo and materialize that version")
        registered = embedding_spec_of(views[name])
        if registered is not None and registered != emb:
            raise ModelStoreMismatchError(
                f"the model was trained on {name} with d={emb.dim} but the store registers "
                f"d={registered.dim}; retrain, or serve the version the model was trained on")
    return trained


def check_recorded_versions(extra: dict, trained: FeatureSpec) -> None:
    """The artifact's embedding_version(s) must be its feature_spec's (an edited artifact is refused)."""
    versions = list(trained.embedding_versions)
    recorded = extra.get("embedding_versions")
    one = extra.get("embedding_version")
    if recorded is None and one is not None:  # written before several views: one version
        recorded = [int(one)] if versions else None
    if recorded is not None and [int(v) for v in recorded] != versions:
        raise ModelStoreMismatchError(f"the artifact records embedding versions {recorded} but its feature_spec "
                                      f"pins {versions}; retrain it")


class CTRScorer:
    """Score candidates for a user with a trained artifact, features read from the online store.

    feature_store: a Feast FeatureStore (its repo's spec.json is the store's spec unless `spec`
    is given). model_artifact: an artifact folder or a loaded ModelArtifact. `torch_threads`
    sets torch's intra-op threads (1 is lowest latency for one request per worker), and
    onnxruntime's for the onnx backends. `backend`: one of MODEL_BACKENDS (docs/serving.md).
    `retain_memory` keeps the model's freed activations in the process between requests
    (serving.allocator; process-wide, glibc only): without it each request page-faults its
    activations in afresh.

    `projected_items`: score DIN from the projected item view the artifact pins (serving/projected.py:
    per-item work read, not recomputed; same scores). None: when the artifact pins one and the
    backend is torch or onnx (its forward then runs in onnxruntime); True: required (ProjectedItemsMismatchError without a valid pin); False: never.

    Thread-safe; one model forward runs at a time per scorer while other requests' lookups and
    batch assembly go on. Concurrent forwards in one process only interleave under the GIL and
    evict each other's activations from the caches: with the HTTP service's thread pool at 8-32
    clients they cost 1.5-2.5x the CPU per request of forwards in turn (docs/serving.md).
    """

    def __init__(self, feature_store: FeatureStore, model_artifact: str | Path | ModelArtifact,
                 spec: FeatureSpec | None = None, torch_threads: int | None = None,
                 max_candidates: int | None = None, retain_memory: bool = True, backend: str = "torch",
                 projected_items: bool | None = None):
        if retain_memory:
            retain_freed_memory()
        if torch_threads:
            torch.set_num_threads(int(torch_threads))
        self._torch_threads = torch_threads
        self.store = feature_store
        self.reader = OnlineReader(feature_store, spec)
        # The caller's ids -> the repo's dense codes (idmap.py); identity when features build kept them.
        self.ids = DatasetIds.load(Path(feature_store.repo_path) / DATA_DIR)
        self.ids.check(self.reader.spec.id_maps, f"{feature_store.repo_path}/{DATA_DIR}")
        model_dir = None
        if not isinstance(model_artifact, ModelArtifact):
            model_dir = Path(model_artifact)
            model_artifact = from_pretrained(model_dir)
        self.artifact = model_artifact
        self.model = model_artifact.model.eval()
        self.spec = check_artifact_against_store(model_artifact, feature_store, self.reader.spec)
        self.inputs = model_artifact.inputs
        self.use_moon = self.inputs.moon_dim is not None
        self.embedding_versions = self.spec.embedding_versions
        # one view: its version; several: the first (all of them in embedding_versions)
        self.embedding_version = self.embedding_versions[0] if self.embedding_versions else None
        self.feature_service = model_artifact.extra.get("feature_service", self.spec.feature_service_name)
        self.model_version = artifact_version(model_dir, model_artifact)
        self.max_candidates = max_candidates
        self._model_lock = threading.Lock()
        self.backend = backend
        self._onnx = None
        if backend != "torch":
            if backend not in MODEL_BACKENDS:
                raise ModelBackendError(f"unknown model backend {backend!r}; choose one of {list(MODEL_BACKENDS)}")
            try:
                from .onnx_model import OnnxScoringModel
            except ImportError as e:
                raise ModelBackendError(f"backend {backend!r} needs onnxruntime: pip install "
                                        "'moon-features[onnx]', or serve with backend torch") from e
            self._onnx = OnnxScoringModel(self.model, backend, threads=int(torch_threads or 1))
        self.projected = self._projected_items(model_dir, projected_items)

    def _projected_items(self, model_dir, wanted: bool | None) -> ProjectedItems | None:
        pin = read_pin(model_dir)
        runtimes = ("torch", "onnx")  # fp32 only: int8 misses the scores' bound
        if wanted is False or (wanted is None and (pin is None or self.backend not in runtimes)):
            return None
        if pin is None or self.backend not in runtimes:
            raise ProjectedItemsMismatchError(
                f"projected_items=True needs the torch or onnx backend (got {self.backend!r}) and an artifact that pins a "
                f"projected item view ({PIN_FILE} in the artifact folder): run `moon-features export "
                f"--projected-items --repo {self.store.repo_path} --model-dir {model_dir}`")
        projection = projection_of(self.artifact, self.spec)
        view = check_pin(pin, self.store, projection, self.spec, model_dir)
        return ProjectedItems(self.store, self.reader, projection, view, self.spec, self.backend,
                              int(self._torch_threads or 1))

    def run_model(self, batch: CTRBatch) -> np.ndarray:
        """float32 click probabilities of one request's batch, by the configured backend; one at a time."""
        with self._model_lock:
            if self._onnx is not None:
                return self._onnx.scores(batch)
            with torch.inference_mode():
                return torch.sigmoid(self.model(batch)).numpy().astype(np.float32, copy=False)

    # --- requests -----------------------------------------------------------------------------
    def lookup(self, user_id: int, candidate_ids) -> OnlineLookup:
        """One reader.lookup; a connection that went stale while the store was down is retried once."""
        versions = self.embedding_versions if self.use_moon else None
        try:
            return self.reader.lookup(user_id, candidate_ids, version=versions)
        except OnlineStoreUnavailableError:
            # The failed connection was dropped; a fresh one succeeds if the store is back.
            return self.reader.lookup(user_id, candidate_ids, version=versions)

    def score_detailed(self, user_id, candidate_item_ids, context: dict | None = None) -> ScoreResult:
        """Ids are the caller's own (int64 or str, as in the dataset); mapped to codes here."""
        raw = np.asarray(candidate_item_ids).reshape(-1)  # not coerced: a string is no int id (idmap)
        if self.max_candidates is not None and len(raw) > self.max_candidates:
            raise TooManyCandidatesError(len(raw), self.max_candidates)
        ids = self.ids.items.encode(raw)
        user_id = int(self.ids.users.encode([user_id])[0])
        if self.projected is not None:
            return self._score_projected(raw, ids, user_id, context)
        t0 = time.perf_counter()
        lookup = self.lookup(int(user_id), ids)
        t1 = time.perf_counter()
        t1b = t1
        if len(ids) == 0:
            scores = np.zeros(0, dtype=np.float32)
            hist_len = min(lookup.user.hist_len, self.spec.max_len)
        else:
            batch = online_batch(lookup, self.spec, self.inputs, int(user_id), context)
            t1b = time.perf_counter()
            scores = self.run_model(batch)
            hist_len = int(batch.hist_len[0])
        t2 = time.perf_counter()
        cand = lookup.candidates
        found = cand.profile_found & cand.embedding_found if self.use_moon else cand.profile_found
        hist = lookup.history
        hist_found = hist.profile_found & hist.embedding_found if self.use_moon else hist.profile_found
        return ScoreResult(raw, scores, found, lookup.user.found, hist_len,
                           int((~hist_found).sum()), {"lookup": t1 - t0, "batch": t1b - t1, "model": t2 - t1b})

    def _score_projected(self, raw: np.ndarray, ids: np.ndarray, user_id: int, context: dict | None) -> ScoreResult:
        extra = context_columns(self.spec, context, 1)
        try:
            out = self.projected.score(user_id, ids, extra, self._model_lock)
        except OnlineStoreUnavailableError:  # a stale connection: once more, as lookup() does
            out = self.projected.score(user_id, ids, extra, self._model_lock)
        return ScoreResult(raw, out["scores"], out["item_found"], out["user_found"], out["history_length"],
                           out["history_missing"], out["timings"])

    def score(self, user_id, candidate_item_ids, context: dict | None = None) -> np.ndarray:
        """float32 [n]: the click probability of each candidate, in the order given."""
        return self.score_detailed(user_id, candidate_item_ids, context).scores

    def check_store(self) -> None:
        """Read one user row: raises OnlineStoreUnavailableError (naming the address) if the store is down."""
        try:
            self.reader.user_features(0)
        except OnlineStoreUnavailableError:
            self.reader.user_features(0)  # once more: the first try may only have found a stale connection

    def close(self) -> None:
        self.reader.close()
        if self.projected is not None:
            self.projected.close()
