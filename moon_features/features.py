"""Fill a Feast repository from a dataset: spec.json, offline sources, `feast apply`."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from feast import FeatureStore

from .data.layout import load_dataset
from .idmap import coded_dataset
from .spec import FeatureSpec, describe_views
from .store.definitions import embedding_views_in
from .store.repo import DATA_DIR, SPEC_FILE, apply_repo, init_repo
from .store.sources import write_sources


def build_feature_repo(data: str | Path, repo: str | Path, max_len: int = 50, online: str | None = None,
                       embedding=None, context_columns=(),
                       embedding_versions=None, sequences=()) -> tuple[FeatureSpec, FeatureStore]:
    """Write the spec and the sources of `data` into `repo` and apply it.

    The spec pins `embedding` (one EmbeddingSpec or several), else the views of
    `embedding_versions` (versions whose sources are in <repo>/data, in the order the models
    concatenate them), else the newest embedding version whose source is in <repo>/data.
    context_columns: interaction-log columns that become context features (docs/concepts.md);
    sequences: fields.SequenceSpec of behaviour sequences besides the main one (docs/concepts.md).
    """
    repo = Path(repo)
    if online or not (repo / "feature_store.yaml").exists():
        init_repo(repo, online=online or "sqlite")
    ds, ids = coded_dataset(load_dataset(data))  # any int64 / string ids -> dense codes (idmap.py)
    if embedding is None:
        embedding = embedding_views_in(repo / DATA_DIR, embedding_versions)
    spec = replace(FeatureSpec.from_dataset(ds, max_len=max_len, embedding=embedding, context_columns=context_columns,
                                            sequences=sequences), id_maps=ids.fingerprint())
    spec.save(repo / SPEC_FILE)
    paths = write_sources(ds, spec, repo / DATA_DIR)
    ids.save(repo / DATA_DIR)  # serving and `train --rows` map the user's ids with it
    store = apply_repo(repo)
    print(f"feature repo {repo}: {len(paths)} sources written, spec {spec.fingerprint()} "
          f"(embedding {describe_views(spec.embeddings)}; "
          f"context {', '.join(f.name for f in spec.context) or 'none'}; "
          f"sequences {', '.join(['main'] + [q.name for q in spec.sequences])}; {ids.summary()}), applied")
    return spec, store
