"""MoonComputeEngine: Feast's local batch engine, with embedding views written by the bulk writer.

Set ``batch_engine: {type: moon_features.store.engine.MoonComputeEngine}`` in feature_store.yaml
(configs.plugin_redis_config does) and `feast materialize` / `materialize_incremental` write embedding
views (moon.* tags, Parquet FileSource, Redis online store) through bulk_writer: validated,
vectorised, pipelined. Every other view, and every other online store, takes the stock path.
Feast itself records the materialization interval afterwards, as for any engine.
"""
from __future__ import annotations

from typing import Literal

from feast import FileSource
from feast.infra.compute_engines.local.compute import LocalComputeEngineConfig
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.common.materialization_job import MaterializationJobStatus

from .bulk_writer import write_embedding_view
from .configs import is_redis_config
from .definitions import embedding_spec_of
from .feast_compat import LocalEngineMaterializeHook
from .markers import mark_materialized_config

ENGINE_TYPE = "moon_features.store.engine.MoonComputeEngine"


class MoonComputeEngineConfig(LocalComputeEngineConfig):
    type: Literal["moon_features.store.engine.MoonComputeEngine"] = ENGINE_TYPE  # type: ignore[assignment]
    batch_size: int = 10_000
    """Rows per pipelined write of an embedding view."""


class MoonComputeEngine(LocalEngineMaterializeHook):
    def __init__(self, backend=None, batch_size: int = 10_000, **kwargs):
        kwargs.pop("type", None)
        super().__init__(backend=backend, **kwargs)
        self.batch_size = int(batch_size)

    def materialize_one(self, registry, task, **kwargs):
        fv = task.feature_view
        fast = (embedding_spec_of(fv) is not None and isinstance(fv.batch_source, FileSource)
                and is_redis_config(self.repo_config))
        if not fast:
            return self._marked(task, super().materialize_one(registry, task, **kwargs))
        job_id = f"{fv.name}-{task.start_time}-{task.end_time}"
        try:
            result = write_embedding_view(self.repo_config, self.online_store, fv, task.start_time, task.end_time,
                                          batch_size=self.batch_size, progress=True)
            print(result.summary())
            return self._marked(task, LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED))
        except Exception as e:  # Feast re-raises a failed job's error from materialize()
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.ERROR, error=e)

    def _marked(self, task, job):
        """A view written in full gets its marker in the online store (store/markers.py), so a
        wiped store is told apart from a filled one by /health."""
        if job.status() == MaterializationJobStatus.SUCCEEDED:
            mark_materialized_config(self.repo_config, [task.feature_view.name], task.end_time)
        return job
