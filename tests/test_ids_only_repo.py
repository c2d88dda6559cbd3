"""An ids-only repo (built without embeddings) serves an ids-only DIN (use_moon=False): the
online readers read no embedding view, and online scores equal offline ones."""
from __future__ import annotations

import numpy as np
import pytest

from fixtures.serving_setup import train_tiny_model, users_with_history
from fixtures.store_repo import build_repo, delete_project_keys
from moon_features.consistency import check_consistency
from moon_features.serving.scorer import CTRScorer
from moon_features.store.online_reader import OnlineReader
from moon_features.store.repo import apply_repo, materialize_all

REDIS = "127.0.0.1:6379"


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_ids_only_repo_serves_ids_only_model(tmp_path, online):
    repo, spec = build_repo(tmp_path, online=online, redis_connection=REDIS, n_items=80, max_len=10, embedding=False)
    assert spec.embedding is None
    store = apply_repo(repo)
    try:
        assert not [fv.name for fv in store.list_feature_views() if "embedding" in fv.name]
        model_dir = train_tiny_model(repo, tmp_path / "model", use_moon=False, max_rows=400)
        materialize_all(store)
        reader = OnlineReader(store, spec)
        assert reader.backend == ("redis" if online == "redis" else "feast")
        user = int(users_with_history(repo)[0])
        lookup = reader.lookup(user, [1, 2, 3, 10**9])
        assert lookup.candidates.embeddings is None and lookup.history.embeddings is None
        assert lookup.candidates.profile_found.tolist() == [True, True, True, False]
        assert len(lookup.history.item_ids) == lookup.user.hist_len > 0
        with pytest.raises(ValueError, match="no embedding"):
            reader.item_embeddings([1])
        reader.close()

        scorer = CTRScorer(store, model_dir)
        scores = scorer.score(user, [1, 2, 3])
        assert scores.shape == (3,) and np.isfinite(scores).all() and len(set(scores.tolist())) > 1
        scorer.close()
        report = check_consistency(store, model_dir, n_rows=40)
        assert report.ok, report
    finally:
        if online == "redis":
            delete_project_keys(store.config.project, REDIS)
