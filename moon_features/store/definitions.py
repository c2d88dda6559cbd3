"""What the Feast definitions of a repository are built from, and how to load them.

The definitions themselves are declared in the repository's `features.py` (the template is
`moon_features/store/template/features.py`; `feature_repo/features.py` is a copy), so that a
reader can review every entity, source, view and feature service in one file. This module holds
what that file reads (the spec, the embedding versions present, the tags the plugin relies on)
and `repo_objects`, which runs a repo's `features.py` the way `feast apply` does.
"""
from __future__ import annotations

import runpy
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.data_source import DataSource
from feast.types import Float32, Int64

from ..spec import EMBEDDING_FIELD, EmbeddingSpec, FeatureSpec, embedding_view_name, embedding_views
from .configs import DATA_DIR, SPEC_FILE
from .errors import RepoNotReadyError

# ttl=0 means "never expires" in Feast: profiles, sequences and embeddings stay valid until replaced.
NO_TTL = timedelta(0)
EMBEDDING_VERSION_TAG = "moon.embedding_version"
EMBEDDING_DIM_TAG = "moon.dim"
FEATURES_FILE = "features.py"
TEMPLATE = Path(__file__).resolve().parent / "template" / FEATURES_FILE
FEAST_OBJECTS = (Entity, DataSource, FeatureView, FeatureService)
# the one line of the features.py that repos made before the definitions were spelled out have
LEGACY_FEATURES_LINE = "globals().update(repo_objects("


def source_path(data_dir: Path, view_name: str) -> Path:
    return Path(data_dir).resolve() / f"{view_name}.parquet"


def file_source(data_dir: Path, view_name: str) -> FileSource:
    """The offline source of a view: <data_dir>/<view>.parquet, timestamped by event_timestamp."""
    return FileSource(name=f"{view_name}_source", path=str(source_path(data_dir, view_name)),
                      timestamp_field="event_timestamp")


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
    return sorted(found, key=lambda e: e.version)  # by number: v10 after v2


def embedding_views_in(data_dir: Path, versions=None) -> tuple[EmbeddingSpec, ...]:
    """The embedding views `features build` pins: `versions` (in that order; the models read the
    views' vectors concatenated so), each with a source in data_dir; by default the newest source's."""
    found = {e.version: e for e in embedding_sources_in(data_dir)}
    if versions is None:
        return (found[max(found)],) if found else ()
    missing = [v for v in versions if v not in found]
    if missing:
        raise RepoNotReadyError(
            f"no embedding source for version(s) {missing} in {data_dir} (versions there: {sorted(found) or 'none'}): "
            "write each with `moon-features encoder embed --version N` (or as data/item_moon_embedding_v<N>.parquet), "
            "or pick --embedding-versions from the versions there")
    return embedding_views([found[v] for v in versions])


def embedding_versions(spec: FeatureSpec, data_dir: Path) -> list[EmbeddingSpec]:
    """The embedding views a repo defines: every version with a source in data_dir, and the spec's
    (each view the spec names, when it names several)."""
    versions = {e.version: e for e in embedding_sources_in(data_dir)}
    versions.update({e.version: e for e in spec.embeddings})
    return [versions[v] for v in sorted(versions)]


def profile_schema(spec: FeatureSpec, view: str) -> list[Field]:
    """The Feast schema of a profile view, from the spec's typed fields read from it: a
    categorical is Int64 vocabulary codes (0 = unknown; the vocabulary size is a field tag), a
    dense feature Float32."""
    out = []
    for f in spec.fields():
        if f.source == view and f.kind == "categorical":
            out.append(Field(name=f.name, dtype=Int64, tags={"vocab_size": str(f.vocab_size)}))
        elif f.source == view and f.kind == "dense":
            out.append(Field(name=f.name, dtype=Float32))
    return out


def load_repo_spec(repo_dir: Path) -> FeatureSpec:
    spec_file = Path(repo_dir) / SPEC_FILE
    if not spec_file.exists():
        raise RepoNotReadyError(f"{spec_file} does not exist: run `moon-features demo` or "
                                f"`moon-features features build --repo {repo_dir}` first")
    return FeatureSpec.load(spec_file)


def repo_objects(repo_dir: Path) -> dict[str, object]:
    """The Feast objects <repo>/features.py defines (what `feast apply` registers), by global name."""
    repo_dir = Path(repo_dir)
    load_repo_spec(repo_dir)  # a missing spec is the usual cause; say so before running the file
    path = repo_dir / FEATURES_FILE
    if not path.exists():
        raise RepoNotReadyError(f"{path} does not exist: `moon-features features build --repo {repo_dir}` "
                                f"writes it (a copy of {TEMPLATE})")
    if LEGACY_FEATURES_LINE in path.read_text():
        raise RepoNotReadyError(f"{path} is the old generated file: run `moon-features features build --repo "
                                f"{repo_dir}` (or copy {TEMPLATE}) to replace it with the spelled-out definitions")
    defined = runpy.run_path(str(path), run_name="features")
    out: dict[str, object] = {}
    for name, obj in defined.items():
        if isinstance(obj, FEAST_OBJECTS) and not any(obj is seen for seen in out.values()):
            out[name] = obj
    return out


__all__ = ["repo_objects", "embedding_view_name", "embedding_spec_of", "embedding_versions", "embedding_views_in",
           "file_source", "load_repo_spec", "profile_schema", "source_path"]
