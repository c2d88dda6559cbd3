"""Build a projected item view for an artifact (`moon-features export --projected-items`).

Rows come from what the online store holds for every catalogue item (so they are the rows the
serving batch would compute), go to data/item_projected_v<N>.parquet, are registered as a view
tagged with the weights' fingerprint plus a feature service that pins it, and are materialized;
the artifact folder then pins (view, version, fingerprint, service). See serving/projected.py.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from feast import FeatureService, FeatureStore, FeatureView, Field
from feast.types import Array, Float32

from ctr_models.artifact import from_pretrained
from ctr_models.item_projection import ItemProjection

from ..batching import clip_ids, standardised
from ..spec import ITEM_PROFILE_VIEW, SEQUENCE_VIEW, USER_PROFILE_VIEW, FeatureSpec
from ..store.configs import DATA_DIR
from ..store.definitions import EMBEDDING_DIM_TAG, NO_TTL, file_source, source_path
from ..store.online_reader import OnlineReader
from ..store.repo import materialize_all
from .projected import FEATURE, FINGERPRINT_TAG, PIN_FILE, VIEW_PREFIX, VIEW_TAG, projection_of, source_markers
from .scorer import check_artifact_against_store


def catalogue_ids(repo: Path, spec: FeatureSpec) -> np.ndarray:
    """Every item id of the repo's item profile and pinned embedding sources."""
    views = [ITEM_PROFILE_VIEW] + [e.view_name for e in spec.embeddings]
    ids = [pq.read_table(source_path(repo / DATA_DIR, v), columns=["item_id"]).column(0).to_numpy() for v in views
           if source_path(repo / DATA_DIR, v).exists()]
    return np.unique(np.concatenate(ids).astype(np.int64)) if ids else np.zeros(0, np.int64)


def item_rows(projection: ItemProjection, reader: OnlineReader, spec: FeatureSpec,
              ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids the store holds anything for, float32 rows [n, width]) from the online store's values:
    the candidate row the serving batch would build for each (item id clipped to the spec; the
    vectors of the spec's embedding views concatenated, as the serving batch has them)."""
    moon = bool(spec.embeddings)
    batch = reader.items(ids, spec.embedding_versions) if moon else reader.items(ids, embeddings=False)
    emb_found = batch.embedding_found if moon else np.ones(len(ids), bool)
    # an item held in any embedding view (or the profile) gets a row: zeros in the views lacking it
    keep = batch.profile_found | (_found_in_any(reader, ids, spec, batch) if moon else False)
    sparse = {"item_id": torch.from_numpy(clip_ids(ids[keep], spec.max_item_id))}
    sparse.update({f.name: torch.from_numpy(batch.profiles[f.name][keep].astype(np.int64)) for f in spec.item_categorical})
    dense = {n: torch.from_numpy(standardised(spec, n, batch.profiles[n][keep])) for n in spec.item_dense}
    emb = torch.from_numpy(np.ascontiguousarray(batch.embeddings[keep])) if moon else None
    complete = torch.from_numpy(batch.profile_found[keep] & emb_found[keep])
    return ids[keep], projection.rows(sparse, dense, emb, complete).numpy()


def _found_in_any(reader: OnlineReader, ids: np.ndarray, spec: FeatureSpec, batch) -> np.ndarray:
    """bool [n]: the item has a vector in at least one of the spec's embedding views (`batch`
    read them all: found in every one)."""
    if len(spec.embeddings) == 1:
        return batch.embedding_found
    return np.logical_or.reduce([reader.items(ids, v, profiles=False).embedding_found for v in spec.embedding_versions])


def _next_version(store: FeatureStore) -> int:
    have = [int(fv.name[len(VIEW_PREFIX):]) for fv in store.list_feature_views()
            if fv.name.startswith(VIEW_PREFIX) and fv.name[len(VIEW_PREFIX):].isdigit()]
    return max(have, default=0) + 1


def _write_source(path: Path, ids: np.ndarray, rows: np.ndarray) -> None:
    n, width = rows.shape
    offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
    now = pa.array(np.full(n, np.datetime64(datetime.now(timezone.utc).replace(tzinfo=None), "us")),
                   pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"item_id": pa.array(ids), "event_timestamp": now,
                             FEATURE: pa.ListArray.from_arrays(offsets, pa.array(rows.reshape(-1), pa.float32()))}), path)


def build_projected_items(store: FeatureStore, model_dir: str | Path, spec: FeatureSpec | None = None) -> dict:
    """Compute, register, materialize and pin a new projected item view for the artifact; the pin."""
    model_dir, repo = Path(model_dir), Path(store.repo_path)
    reader = OnlineReader(store, spec)
    artifact = from_pretrained(model_dir)
    trained = check_artifact_against_store(artifact, store, reader.spec)
    projection = projection_of(artifact, trained)
    version = _next_version(store)
    name = f"{VIEW_PREFIX}{version}"
    ids, rows = item_rows(projection, reader, trained, catalogue_ids(repo, trained))
    reader.close()
    _write_source(source_path(repo / DATA_DIR, name), ids, rows)
    tags = {FINGERPRINT_TAG: projection.fingerprint, "moon.model_type": artifact.model.config.model_type}
    view = FeatureView(name=name, entities=[store.get_entity("item")], ttl=NO_TTL, source=file_source(repo / DATA_DIR, name),
                       schema=[Field(name=FEATURE, dtype=Array(Float32), tags={EMBEDDING_DIM_TAG: str(projection.width)})],
                       tags={**tags, EMBEDDING_DIM_TAG: str(projection.width)},
                       description=f"DIN's per-item work for the weights {projection.fingerprint} (serving/projected.py)")
    service_name = f"{trained.feature_service_name}_projected_v{version}"
    service = FeatureService(name=service_name, tags={**tags, VIEW_TAG: name},
                             features=[store.get_feature_view(USER_PROFILE_VIEW), store.get_feature_view(SEQUENCE_VIEW), view],
                             description="What the scorer reads with the projected item view pinned by the artifact")
    store.apply([view, service])
    materialize_all(store, [name])
    pin = {"view": name, "version": version, "fingerprint": projection.fingerprint, "feature_service": service_name,
           "width": projection.width, "items": int(len(ids)), "sources": source_markers(store, trained)}
    (model_dir / PIN_FILE).write_text(json.dumps(pin, indent=2))
    return pin
