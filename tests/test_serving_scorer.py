"""CTRScorer over real Feast stores (Redis at 127.0.0.1:6379 and SQLite) with a real tiny DIN+MOON
trained from the same repo: offline == online scores, load-time checks, unknown ids, the CLI check."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ctr_models.artifact import from_pretrained
from moon_features.serving.batch import RequestAttributeCodes, online_batch
from moon_features.cli import main as moon_cli
from moon_features.consistency import check_consistency, sample_rows
from moon_features.serving.errors import ConsistencyError, ModelStoreMismatchError, TooManyCandidatesError
from fixtures.serving_setup import build_serving_setup, users_with_history
from moon_features.serving.scorer import CTRScorer
from moon_features.spec import EmbeddingSpec
from moon_features.store.definitions import repo_objects
from fixtures.store_repo import delete_project_keys
from moon_features.store.push import append_positive_event
from moon_features.store.repo import materialize_all, open_store, sqlite_config

REDIS = "127.0.0.1:6379"
UNKNOWN = 10**9


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One repo and model; the repo's default config is Redis, sqlite.yaml is the same project on SQLite."""
    s = build_serving_setup(tmp_path_factory.mktemp("serving_scorer"), online="redis", redis_connection=REDIS)
    (s.repo / "sqlite.yaml").write_text(sqlite_config(s.project))
    sqlite = open_store(s.repo, s.repo / "sqlite.yaml")
    sqlite.apply(list(repo_objects(s.repo).values()))
    materialize_all(sqlite)
    yield s, {"redis": open_store(s.repo), "sqlite": sqlite}
    delete_project_keys(s.project, REDIS)


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_offline_and_online_scores_agree(setup, backend):
    s, stores = setup
    report = check_consistency(stores[backend], s.model_dir, n_rows=80, seed=1)
    assert report.backend == ("redis" if backend == "redis" else "feast")
    assert len(report.rows) == 80 and report.rows["user_id"].nunique() > 5
    assert report.ok, report.line()
    assert report.max_abs_diff < 1e-5
    # The scores are a real model's: they vary with the row, so agreement is not trivial.
    assert report.rows["online"].std() > 1e-4


def test_scorer_checks_the_artifact_against_the_store_at_load(setup):
    s, stores = setup
    with pytest.raises(ModelStoreMismatchError, match="embedding"):
        CTRScorer(stores["redis"], s.model_dir, spec=s.spec.with_embedding(EmbeddingSpec(1, 64)))
    with pytest.raises(ModelStoreMismatchError, match="max_len"):
        CTRScorer(stores["redis"], s.model_dir, spec=dataclasses.replace(s.spec, max_len=7))
    # An artifact pinning embedding v2 against a store (and spec) that only registers v1.
    art = from_pretrained(s.model_dir)
    v2 = s.spec.with_embedding(EmbeddingSpec(2, s.spec.embedding.dim))
    art.extra = {**art.extra, "feature_spec": v2.to_dict(), "embedding_version": 2, "embedding_versions": [2]}
    with pytest.raises(ModelStoreMismatchError, match=r"item_moon_embedding_v2.*no such view"):
        CTRScorer(stores["redis"], art, spec=v2)
    art.extra = {**art.extra, "embedding_versions": [1]}  # edited: the recorded versions contradict the spec
    with pytest.raises(ModelStoreMismatchError, match=r"records embedding versions \[1\]"):
        CTRScorer(stores["redis"], art, spec=v2)


def test_scores_follow_request_order_and_one_lookup_fans_out(setup):
    s, stores = setup
    scorer = CTRScorer(stores["redis"], s.model_dir)
    user = int(users_with_history(s.repo, 3)[0])
    ids = np.array([5, 17, 3, 120, 64], dtype=np.int64)
    forward, backward = scorer.score(user, ids), scorer.score(user, ids[::-1])
    assert forward.dtype == np.float32 and forward.shape == (5,)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-6)
    lookup = scorer.lookup(user, ids)
    # One fan-out for the user, the candidates and the history items (one round trip with the
    # reader's Lua path, two where it falls back): never one per item.
    assert 1 <= lookup.round_trips <= 2
    assert len(lookup.history.item_ids) == lookup.user.hist_len > 0
    scorer.max_candidates = 4
    with pytest.raises(TooManyCandidatesError, match="5 candidates exceed the limit of 4"):
        scorer.score(user, ids)


def test_concurrent_requests_score_as_they_do_one_at_a_time(setup):
    """The HTTP service calls one scorer from its thread pool; forwards take turns on a lock."""
    from concurrent.futures import ThreadPoolExecutor

    s, stores = setup
    scorer = CTRScorer(stores["redis"], s.model_dir)
    rng = np.random.default_rng(0)
    users = users_with_history(s.repo, 1)[:6]
    requests = [(int(u), rng.choice(np.arange(1, 201), 20, replace=False)) for u in users for _ in range(4)]
    serial = [scorer.score(u, ids) for u, ids in requests]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda r: scorer.score(*r), requests))
    for a, b in zip(serial, concurrent):
        np.testing.assert_array_equal(a, b)
    assert len({round(float(x[0]), 6) for x in serial}) > 1  # different requests, different scores


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_unknown_user_and_unknown_item_are_scored_and_flagged(setup, backend):
    s, stores = setup
    scorer = CTRScorer(stores[backend], s.model_dir)
    user = int(users_with_history(s.repo, 3)[0])
    result = scorer.score_detailed(user, [4, UNKNOWN, 9])
    assert result.user_found and result.history_length > 0
    assert result.item_found.tolist() == [True, False, True] and result.unknown_item_ids == [UNKNOWN]
    batch = online_batch(scorer.lookup(user, [4, UNKNOWN]), scorer.spec, scorer.inputs, user)
    assert not batch.item_emb[1].any() and batch.item_emb[0].any()
    assert int(batch.sparse["item_id"][1]) == 0 and int(batch.sparse["category"][1]) == 0

    nobody = scorer.score_detailed(UNKNOWN, [4, 9])
    assert not nobody.user_found and nobody.history_length == 0 and nobody.item_found.all()
    assert np.isfinite(nobody.scores).all()
    batch = online_batch(scorer.lookup(UNKNOWN, [4]), scorer.spec, scorer.inputs, UNKNOWN)
    assert int(batch.hist_len[0]) == 0 and not batch.hist_emb.any() and int(batch.sparse["user_id"][0]) == 0


def test_request_attribute_codes_answer_like_the_item_table():
    codes = RequestAttributeCodes(np.array([7, 3, 9, 3]), np.array([2, 5, 1, 5]))
    got = codes[np.array([[3, 7, 0], [9, 4, 0]])]
    assert got.tolist() == [[5, 2, 0], [1, 0, 0]]
    assert RequestAttributeCodes(np.zeros(0, np.int64), np.zeros(0, np.int64))[np.array([[1, 2]])].tolist() == [[0, 0]]


def test_consistency_check_catches_an_online_only_event(setup):
    """A check that cannot fail proves nothing: an event pushed online only must be caught,
    and the report must say that the history is what differs."""
    s, stores = setup
    store = stores["sqlite"]
    user = 10**6  # a user the offline log has never seen
    append_positive_event(store, s.spec, user, 12, pd.Timestamp.now(tz="UTC"))
    rows = sample_rows(store, 4, seed=0).assign(user_id=user)
    report = check_consistency(store, s.model_dir, rows=rows)
    assert not report.ok
    assert report.differing_features.get("hist_item_id") == 4 and "item_emb" not in report.differing_features
    with pytest.raises(ConsistencyError, match="DIFFER"):
        report.raise_for_mismatch()


def test_check_consistency_cli(setup, capsys):
    s, _ = setup
    code = moon_cli(["check-consistency", "--repo", str(s.repo), "--model-dir", str(s.model_dir),
                     "--rows", "24", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "consistent: 24 rows" in out and "on redis" in out


def test_retaining_freed_memory_stops_per_request_page_faults():
    """DIN's attention over one request (200 candidates x 50 history items) maps its multi-MB
    activations afresh on every call under glibc's default malloc settings; serving.allocator
    keeps them. Page faults are counted, not timed, in a fresh process (the setting is
    process-wide and cannot be undone).

    The baseline pins glibc's starting mmap threshold (128 KiB): left alone, glibc raises it
    dynamically after some frees, and whether that happens depends on the process's history
    (0 faults per call in 9 of 40 fresh processes, about 1,700 in the rest), which made an
    unpinned baseline flaky."""
    import subprocess
    import sys

    probe = """
import ctypes, resource, torch
from ctr_models.layers import TargetAttention
from moon_features.serving.allocator import M_MMAP_THRESHOLD, retain_freed_memory
torch.set_num_threads(1)
attention = TargetAttention(48, (64, 16)).eval()
q, keys, mask = torch.randn(200, 48), torch.randn(1, 50, 48), torch.ones(1, 50, dtype=torch.bool)
def faults_per_request(n=50):
    # the median call: a one-time heap growth after the switch is not a per-request cost
    counts = []
    with torch.inference_mode():
        for _ in range(n):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            attention(q, keys, mask)
            counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return sorted(counts)[n // 2]
ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024)  # glibc's starting value
faults_per_request(10)
default = faults_per_request()
ok = retain_freed_memory()
faults_per_request(10)
print(default, faults_per_request(), ok, retain_freed_memory())
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    default, retained, ok, again = out.stdout.split()
    assert ok == "True" and again == "True"  # glibc on Linux; idempotent
    # measured: about 2,000 faults of 4 KiB pages per call at the pinned threshold, 0 once
    # retained; a CI run once averaged 15 over 50 retained calls (the heap growing once after
    # the switch), hence the median call
    assert int(default) > 100
    assert int(retained) < min(5, int(default) // 20)
