"""The Feast repository: real `feast apply` / `feast materialize`, point-in-time retrieval, online reads."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moon_features.data.sequences import build_sequences, sequence_as_of
from fixtures.store_repo import unit_vectors, write_embedding_source
from moon_features.spec import (ITEM_PROFILE_VIEW, SEQUENCE_PUSH_SOURCE, SEQUENCE_VIEW, USER_PROFILE_VIEW,
                                EmbeddingSpec, FeatureSpec)
from moon_features.store.definitions import TEMPLATE, embedding_spec_of, repo_objects
from moon_features.store.repo import DATA_DIR, SPEC_FILE, RepoNotReadyError, init_repo, materialize_all
from moon_features.store.sources import entity_rows

REPO_TEMPLATE = Path(__file__).resolve().parents[1] / "feature_repo"
FEAST = str(Path(sys.executable).with_name("feast"))


def test_historical_features_are_point_in_time_correct(feature_repo, shop):
    repo, spec, store = feature_repo
    rows = entity_rows(shop).sample(300, random_state=1).reset_index(drop=True)
    frame = store.get_historical_features(entity_df=rows, features=spec.feature_refs()).to_df()
    assert len(frame) == len(rows)
    seq = build_sequences(shop.interactions, max_len=spec.max_len)
    for r in frame.itertuples():
        expected = sequence_as_of(seq, r.user_id, r.event_timestamp)
        assert list(r.hist_item_ids) == expected and r.hist_len == len(expected)
    # Profiles are vocabulary codes of the raw attribute.
    item = shop.items.set_index("item_id")
    cat = spec.item_feature("category")
    codes = frame["category"].to_numpy()
    assert (codes == cat.encode(item.loc[frame["item_id"], "category"])).all()


def test_online_features_after_materialize_are_the_latest_state(feature_repo, shop):
    repo, spec, store = feature_repo
    materialize_all(store)
    user = int(shop.interactions["user_id"].iloc[-1])
    online = store.get_online_features(features=[f"user_behavior_sequence:hist_item_ids"],
                                       entity_rows=[{"user_id": user}]).to_dict()
    positives = shop.interactions[(shop.interactions.user_id == user) & (shop.interactions.label == 1)]
    expected = positives.sort_values(["event_timestamp", "item_id"])["item_id"].tolist()[-spec.max_len:]
    assert online["hist_item_ids"][0] == expected


def test_feast_cli_apply_and_materialize_on_the_repo_template(shop_dir, tmp_path):
    """The committed feature_repo/ works with the real `feast` command once sources exist."""
    from moon_features.features import build_feature_repo

    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO_TEMPLATE, repo, ignore=shutil.ignore_patterns("data", "spec.json", "__pycache__"))
    build_feature_repo(shop_dir, repo)
    for cmd in (["plan"], ["apply"], ["materialize", "1970-01-02T00:00:00", "2100-01-01T00:00:00"], ["feature-views", "list"]):
        out = subprocess.run([FEAST, *cmd], cwd=repo, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
    assert "user_behavior_sequence" in out.stdout


def test_repo_without_spec_is_a_clear_error(tmp_path):
    with pytest.raises(RepoNotReadyError, match="moon-features features build"):
        repo_objects(tmp_path)


def test_embedding_views_record_version_and_dim_and_services_pin_them(shop, tmp_path):
    """features.py defines a view per embedding version in data/ plus the spec's, each with its service."""
    spec = FeatureSpec.from_dataset(shop, embedding=EmbeddingSpec(2, 64))
    init_repo(tmp_path)
    spec.save(tmp_path / SPEC_FILE)
    write_embedding_source(tmp_path / DATA_DIR, 1, [1, 2], unit_vectors(2, 32), ["2024-01-01"] * 2)
    objects = repo_objects(tmp_path)
    v1, v2 = objects["item_moon_embedding_v1"], objects["item_moon_embedding_v2"]
    assert embedding_spec_of(v1) == EmbeddingSpec(1, 32) and embedding_spec_of(v2) == EmbeddingSpec(2, 64)
    service = objects["item_moon_embedding_v2_service"]
    assert service.name == spec.feature_service_name
    assert {p.name for p in service.feature_view_projections} == {
        USER_PROFILE_VIEW, ITEM_PROFILE_VIEW, SEQUENCE_VIEW, "item_moon_embedding_v2"}
    assert objects["ids_service"].name == spec.with_embedding(None).feature_service_name
    assert objects["user_behavior_push"].name == SEQUENCE_PUSH_SOURCE


def test_committed_features_py_is_the_template():
    """feature_repo/features.py is what `features build` copies into every repo: keep them one file."""
    assert (REPO_TEMPLATE / "features.py").read_text() == TEMPLATE.read_text()


def test_old_generated_features_py_is_a_clear_error_and_init_repo_replaces_it(shop, tmp_path):
    FeatureSpec.from_dataset(shop).save(tmp_path / SPEC_FILE)
    (tmp_path / "features.py").write_text("from pathlib import Path\nfrom moon_features.store.definitions "
                                          "import repo_objects\nglobals().update(repo_objects(Path('.')))\n")
    with pytest.raises(RepoNotReadyError, match="features build"):
        repo_objects(tmp_path)
    init_repo(tmp_path)  # as `features build` / apply_repo do
    assert (tmp_path / "features.py").read_text() == TEMPLATE.read_text()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_feast_serve_answers_online_requests(feature_repo, shop):
    """`feast serve` (Feast's own HTTP feature server) runs on the repo and returns our features."""
    import json
    import time
    import urllib.request

    repo, spec, store = feature_repo
    materialize_all(store)
    port = _free_port()
    server = subprocess.Popen([FEAST, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = json.dumps({"features": ["item_profile:category", "user_behavior_sequence:hist_len"],
                           "entities": {"item_id": [1, 2], "user_id": [1, 1]}}).encode()
        deadline = time.time() + 120
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body,
                                             headers={"Content-Type": "application/json"})
                reply = json.loads(urllib.request.urlopen(req, timeout=5).read())
                break
            except OSError:
                assert server.poll() is None, "feast serve exited"
                assert time.time() < deadline, "feast serve did not come up in 120 s"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = reply["metadata"]["feature_names"]
    category = reply["results"][names.index("category")]["values"]
    expected = spec.item_feature("category").encode(shop.items.set_index("item_id").loc[[1, 2], "category"])
    assert category == expected.tolist()


def test_feast_cli_on_the_redis_variant(shop, shop_dir, tmp_path):
    """`feast -f feature_store.redis.yaml apply / materialize` with the plugin store and engine."""
    import os

    import yaml

    from fixtures.store_repo import delete_project_keys, unique_project, write_embedding_source, \
        unit_vectors
    from moon_features.store.online_reader import OnlineReader
    from moon_features.store.repo import open_store
    from moon_features.features import build_feature_repo

    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO_TEMPLATE, repo, ignore=shutil.ignore_patterns("data", "spec.json", "__pycache__"))
    project = unique_project()
    config = yaml.safe_load((repo / "feature_store.redis.yaml").read_text())
    config["project"] = project  # the tests' own keys in the shared Redis
    (repo / "feature_store.redis.yaml").write_text(yaml.safe_dump(config))
    vectors = unit_vectors(len(shop.items), 32)
    (repo / "data").mkdir()
    write_embedding_source(repo / "data", 1, shop.items["item_id"], vectors, shop.items["first_seen"])
    build_feature_repo(shop_dir, repo)
    env = {**os.environ, "MOON_REDIS_URL": "127.0.0.1:6379"}
    try:
        for cmd in (["plan"], ["apply"], ["materialize", "1970-01-02T00:00:00", "2100-01-01T00:00:00"]):
            out = subprocess.run([FEAST, "-f", "feature_store.redis.yaml", *cmd], cwd=repo, env=env,
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr[-2000:]
        os.environ["MOON_REDIS_URL"] = "127.0.0.1:6379"
        store = open_store(repo, repo / "feature_store.redis.yaml")
        ids = shop.items["item_id"].to_numpy()[:5]
        got, found = OnlineReader(store).item_embeddings(ids, version=1)
        assert found.all()
        np.testing.assert_array_equal(got, vectors[:5])
    finally:
        os.environ.pop("MOON_REDIS_URL", None)
        delete_project_keys(project)
