"""Small real feature repositories for tests and benchmarks: a synthetic shop plus embeddings.

The embedding source has the layout the encoder's embedding job writes: item_id (int64),
event_timestamp (UTC, microseconds; the item's first_seen), embedding (list<float32>),
encoder_version (int64).
"""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..spec import EmbeddingSpec, FeatureSpec, embedding_view_name
from .definitions import source_path
from .markers import redis_marker_key
from .repo import DATA_DIR, SPEC_FILE, init_repo


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def embedding_table(item_ids, matrix: np.ndarray, timestamps, encoder_version: int) -> pa.Table:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, d = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    ts = pd.to_datetime(pd.Series(timestamps), utc=True).dt.as_unit("us")
    return pa.table({
        "item_id": pa.array(np.asarray(item_ids, dtype=np.int64)),
        "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "embedding": pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), pa.float32())),
        "encoder_version": pa.array(np.full(n, encoder_version, dtype=np.int64)),
    })


def write_embedding_source(data_dir: str | Path, version: int, item_ids, matrix, timestamps,
                           row_group_size: int = 16_384) -> Path:
    path = source_path(Path(data_dir), embedding_view_name(version))
    # Dictionary-encoding random floats only costs time: keep it for the id and version columns.
    pq.write_table(embedding_table(item_ids, matrix, timestamps, version), path, row_group_size=row_group_size,
                   use_dictionary=["item_id", "encoder_version"], write_page_checksum=True)
    return path


def unique_project(prefix: str = "mf_test") -> str:
    """A Feast project name of its own: Redis keys end with it, so tests never collide."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def build_repo(dst: str | Path, online: str = "sqlite", project: str | None = None,
               redis_connection: str = "127.0.0.1:6379", n_items: int = 200, dim: int = 32, version: int = 1,
               seed: int = 0, extra_embedding_items: int = 0, max_len: int = 50) -> tuple[Path, FeatureSpec]:
    """A repo with the shop's sources and an embedding source for its items (plus extra ids if asked).

    Not applied: call apply_repo. `online` is 'sqlite', 'redis' or 'moon-redis'.
    """
    from ..data.synthetic import generate_shop
    from .sources import write_sources

    dst = Path(dst)
    ds = generate_shop(dst / "shop", n_items=n_items, seed=seed, progress=False)
    spec = FeatureSpec.from_dataset(ds, max_len=max_len, embedding=EmbeddingSpec(version, dim))
    repo = dst / "repo"
    project = project or unique_project()
    if online == "moon-redis":
        from .online_store import moon_redis_config

        init_repo(repo, project=project, online="sqlite")
        (repo / "feature_store.yaml").write_text(moon_redis_config(project, redis_connection))
    else:
        init_repo(repo, project=project, online=online, redis_connection=redis_connection)
    spec.save(repo / SPEC_FILE)
    write_sources(ds, spec, repo / DATA_DIR)
    ids = ds.items["item_id"].to_numpy(np.int64)
    ts = ds.items["first_seen"]
    if extra_embedding_items:
        extra = np.arange(ids.max() + 1, ids.max() + 1 + extra_embedding_items, dtype=np.int64)
        ids = np.concatenate([ids, extra])
        ts = pd.concat([ts, pd.Series([ts.min()] * extra_embedding_items)], ignore_index=True)
    write_embedding_source(repo / DATA_DIR, version, ids, unit_vectors(len(ids), dim, seed), ts)
    return repo, spec


def stock_redis_yaml(project: str, connection_string: str, redis_type: str = "redis",
                     registry: str = "data/registry_redis.db") -> str:
    """feature_store.yaml of plain Feast on Redis (no plugin, Feast's local engine): the baseline."""
    return f"""project: {project}
provider: local
registry: {registry}
online_store:
  type: redis
  redis_type: {redis_type}
  connection_string: "{connection_string}"
offline_store:
  type: duckdb
entity_key_serialization_version: 3
"""


def project_snapshot(project: str, redis_url: str = "127.0.0.1:6379") -> dict[bytes, dict]:
    """Every entity hash of a Feast project, keyed by entity key without the project suffix.

    The plugin's materialization marker (store/markers.py: one hash named with the project, not
    an entity key; stock Feast writes none) is left out: the snapshot is what Feast wrote."""
    import redis

    from .redis_connection import parse_connection_string

    nodes, params = parse_connection_string(redis_url)
    client = redis.Redis(host=nodes[0][0], port=nodes[0][1], **params)
    suffix, marker = project.encode(), redis_marker_key(project)
    out = {key[:-len(suffix)]: client.hgetall(key) for key in client.scan_iter(match=b"*" + suffix, count=1000)
           if key != marker}
    client.close()
    return out


def delete_project_keys(project: str, redis_url: str = "127.0.0.1:6379") -> int:
    """Remove every Redis key of a Feast project (keys end with the project name)."""
    import redis

    from .redis_connection import parse_connection_string

    nodes, params = parse_connection_string(redis_url)
    client = redis.Redis(host=nodes[0][0], port=nodes[0][1], **params)
    deleted = 0
    batch = []
    for key in client.scan_iter(match=b"*" + project.encode(), count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    client.close()
    return deleted
