"""Feast object factories: entities, feature views, push source and feature services from a spec.

`feature_repo/features.py` calls `repo_objects` so that `feast apply` sees exactly what the
Python API registers; the spec lives once, in spec.json beside it.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Float32, Int64

from ..spec import (EMBEDDING_FIELD, ITEM_PROFILE_VIEW, SEQUENCE_PUSH_SOURCE, SEQUENCE_VIEW, USER_PROFILE_VIEW,
                    EmbeddingSpec, FeatureSpec, embedding_view_name)
from .configs import DATA_DIR, SPEC_FILE
from .errors import RepoNotReadyError

# ttl=0 means "never expires" in Feast: profiles, sequences and embeddings stay valid until replaced.
NO_TTL = timedelta(0)
EMBEDDING_VERSION_TAG = "moon.embedding_version"
EMBEDDING_DIM_TAG = "moon.dim"


def source_path(data_dir: Path, view_name: str) -> Path:
    return Path(data_dir).resolve() / f"{view_name}.parquet"


def _file_source(data_dir: Path, view_name: str) -> FileSource:
    return FileSource(name=f"{view_name}_source", path=str(source_path(data_dir, view_name)),
                      timestamp_field="event_timestamp")


def user_entity() -> Entity:
    return Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="A shopper")


def item_entity() -> Entity:
    return Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64, description="A catalogue item")


def item_profile_view(spec: FeatureSpec, item: Entity, data_dir: Path) -> FeatureView:
    schema = [Field(name=f.name, dtype=Int64, tags={"vocab_size": str(f.vocab_size)}) for f in spec.item_categorical]
    schema += [Field(name=n, dtype=Float32) for n in spec.item_dense]
    return FeatureView(name=ITEM_PROFILE_VIEW, entities=[item], ttl=NO_TTL, schema=schema,
                       source=_file_source(data_dir, ITEM_PROFILE_VIEW),
                       description="Item attributes as vocabulary codes (0 = unknown) and dense values")


def user_profile_view(spec: FeatureSpec, user: Entity, data_dir: Path) -> FeatureView:
    schema = [Field(name=f.name, dtype=Int64, tags={"vocab_size": str(f.vocab_size)}) for f in spec.user_categorical]
    schema += [Field(name=n, dtype=Float32) for n in spec.user_dense]
    return FeatureView(name=USER_PROFILE_VIEW, entities=[user], ttl=NO_TTL, schema=schema,
                       source=_file_source(data_dir, USER_PROFILE_VIEW),
                       description="User profile fields as vocabulary codes (0 = unknown)")


def sequence_push_source(data_dir: Path) -> PushSource:
    return PushSource(name=SEQUENCE_PUSH_SOURCE, batch_source=_file_source(data_dir, SEQUENCE_VIEW))


def sequence_view(spec: FeatureSpec, user: Entity, push: PushSource) -> FeatureView:
    return FeatureView(
        name=SEQUENCE_VIEW, entities=[user], ttl=NO_TTL,
        schema=[Field(name="hist_item_ids", dtype=Array(Int64)), Field(name="hist_len", dtype=Int64)],
        source=push, tags={"max_len": str(spec.max_len)},
        description=f"The user's last {spec.max_len} positive items strictly before event_timestamp, oldest first")


def embedding_view(emb: EmbeddingSpec, item: Entity, data_dir: Path) -> FeatureView:
    return FeatureView(
        name=emb.view_name, entities=[item], ttl=NO_TTL,
        schema=[Field(name=EMBEDDING_FIELD, dtype=Array(Float32), tags={EMBEDDING_DIM_TAG: str(emb.dim)})],
        source=_file_source(data_dir, emb.view_name),
        tags={EMBEDDING_VERSION_TAG: str(emb.version), EMBEDDING_DIM_TAG: str(emb.dim)},
        description=f"MOON item embedding, encoder version {emb.version}, dimension {emb.dim}, L2-normalised")


def embedding_spec_of(view: FeatureView) -> EmbeddingSpec | None:
    """The (version, dim) recorded on a registered embedding view, or None for other views."""
    if EMBEDDING_VERSION_TAG not in view.tags:
        return None
    return EmbeddingSpec(version=int(view.tags[EMBEDDING_VERSION_TAG]), dim=int(view.tags[EMBEDDING_DIM_TAG]))


def embedding_sources_in(data_dir: Path) -> list[EmbeddingSpec]:
    """Embedding versions whose source file exists in data_dir; dim read from the first row."""
    found = []
    for path in sorted(Path(data_dir).glob("item_moon_embedding_v*.parquet")):
        version = int(path.stem.rsplit("_v", 1)[1])
        first = pq.ParquetFile(path).read_row_group(0, columns=[EMBEDDING_FIELD]).column(0)
        found.append(EmbeddingSpec(version=version, dim=len(first[0].as_py())))
    return found


def build_objects(spec: FeatureSpec, data_dir: Path,
                  embeddings: list[EmbeddingSpec] | None = None) -> dict[str, object]:
    """All Feast objects for a spec, keyed by a Python-identifier name (as a repo module exposes them)."""
    user, item = user_entity(), item_entity()
    push = sequence_push_source(data_dir)
    views = {
        ITEM_PROFILE_VIEW: item_profile_view(spec, item, data_dir),
        USER_PROFILE_VIEW: user_profile_view(spec, user, data_dir),
        SEQUENCE_VIEW: sequence_view(spec, user, push),
    }
    versions = {e.version: e for e in (embeddings or [])}
    if spec.embedding:
        versions[spec.embedding.version] = spec.embedding
    for emb in versions.values():
        views[emb.view_name] = embedding_view(emb, item, data_dir)

    base = [views[USER_PROFILE_VIEW], views[ITEM_PROFILE_VIEW], views[SEQUENCE_VIEW]]
    services = {"ids": FeatureService(name=spec.with_embedding(None).feature_service_name, features=base,
                                      description="ID and profile features with behaviour sequences")}
    for emb in versions.values():
        pinned = spec.with_embedding(emb)
        services[emb.view_name] = FeatureService(
            name=pinned.feature_service_name, features=base + [views[emb.view_name]],
            tags={EMBEDDING_VERSION_TAG: str(emb.version)},
            description=f"Everything a CTR model with MOON embeddings v{emb.version} (d={emb.dim}) reads")
    objects = {"user": user, "item": item, "user_behavior_push": push}
    objects.update({f"view_{k}": v for k, v in views.items()})
    objects.update({f"service_{k}": v for k, v in services.items()})
    return objects


def repo_objects(repo_dir: Path) -> dict[str, object]:
    """What feature_repo/features.py exposes: objects for <repo>/spec.json over <repo>/data/."""
    repo_dir = Path(repo_dir)
    spec_file = repo_dir / SPEC_FILE
    if not spec_file.exists():
        raise RepoNotReadyError(f"{spec_file} does not exist: run `moon-features demo` or "
                                f"`moon-features features build --repo {repo_dir}` first")
    spec = FeatureSpec.load(spec_file)
    data_dir = repo_dir / DATA_DIR
    return build_objects(spec, data_dir, embedding_sources_in(data_dir))


__all__ = ["build_objects", "repo_objects", "embedding_view_name", "embedding_spec_of"]
