"""Several embedding views in one spec, end to end (issue #18 item 4).

`features build --embedding-versions 1,2` pins two embedding views (here of dimensions 32 and
16; v2 lacks every 7th item). The models read one content vector per item: the views' vectors
concatenated in the spec's order (moon_dim 48), gathered offline from each view's table and read
online from every view, with zeros where a view lacks the item. A DIN trained so scores online
as offline (Redis and SQLite, torch / onnx / the projected item view), and refuses a repository
whose spec names other views.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fixtures.serving_setup import TINY_DIN, train_tiny_model, users_with_history
from fixtures.store_repo import delete_project_keys, unique_project, unit_vectors, write_embedding_source
from moon_features.cli import main
from moon_features.consistency import check_consistency, sample_rows
from moon_features.data.synthetic import generate_shop
from moon_features.serving.errors import ModelStoreMismatchError
from moon_features.serving.events import StoreHealth
from moon_features.serving.scorer import CTRScorer
from moon_features.serving.settings import ServingSettings
from moon_features.spec import EmbeddingSpec, EmbeddingViewsMismatchError, FeatureSpec, SpecError
from moon_features.store.definitions import embedding_views_in, repo_objects
from moon_features.store.errors import RepoNotReadyError
from moon_features.store.online_reader import OnlineReader
from moon_features.store.repo import DATA_DIR, SPEC_FILE, init_repo, load_spec, materialize_all, open_store, sqlite_config
from moon_features.training.retrieval import moon_table, training_data
from moon_features.training.train import load_model

REDIS = "127.0.0.1:6379"
VIEWS = (EmbeddingSpec(1, 32), EmbeddingSpec(2, 16))


def _build(shop, repo, versions: str) -> FeatureSpec:
    args = ["features", "build", "--data", str(shop), "--repo", str(repo), "--max-len", "20"]
    assert main(args + ["--embedding-versions", versions]) == 0
    return load_spec(repo)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A Redis repo with two embedding sources (v2 missing every 7th item), built with both views,
    a tiny DIN trained on them, materialized on Redis and (same project) on SQLite."""
    root = tmp_path_factory.mktemp("embedding_views")
    ds = generate_shop(root / "shop", n_items=200, seed=0, progress=False)
    repo, project = root / "repo", unique_project()
    init_repo(repo, project=project, online="redis", redis_connection=REDIS)
    ids, ts = ds.items["item_id"].to_numpy(np.int64), ds.items["first_seen"].reset_index(drop=True)
    write_embedding_source(repo / DATA_DIR, 1, ids, unit_vectors(len(ids), 32, seed=1), ts)
    keep = np.arange(len(ids)) % 7 != 0
    write_embedding_source(repo / DATA_DIR, 2, ids[keep], unit_vectors(int(keep.sum()), 16, seed=2), ts[keep])
    spec = _build(root / "shop", repo, "1,2")
    store = open_store(repo)
    materialize_all(store)
    model_dir = train_tiny_model(repo, root / "din", model_overrides=TINY_DIN)
    (repo / "sqlite.yaml").write_text(sqlite_config(project))
    sqlite = open_store(repo, repo / "sqlite.yaml")
    sqlite.apply(list(repo_objects(repo).values()))
    materialize_all(sqlite)
    yield {"root": root, "repo": repo, "spec": spec, "model_dir": model_dir, "missing_v2": ids[~keep],
           "stores": {"redis": store, "sqlite": sqlite}}
    delete_project_keys(project, REDIS)


def test_the_spec_names_both_views_in_order(setup):
    spec, repo = setup["spec"], setup["repo"]
    assert spec.embeddings == VIEWS and spec.embedding_versions == (1, 2) and spec.embedding_dim == 48
    assert spec.model_inputs().moon_dim == 48 and spec.model_inputs(use_moon=False).moon_dim is None
    refs = spec.feature_refs()
    assert refs[-2:] == ["item_moon_embedding_v1:embedding", "item_moon_embedding_v2:embedding"]
    assert [f.name for f in spec.fields() if f.kind == "embedding"] == ["embedding_v1", "embedding_v2"]
    saved = json.loads((repo / SPEC_FILE).read_text())
    assert "embedding" not in saved and saved["embeddings"] == [{"version": 1, "dim": 32}, {"version": 2, "dim": 16}]
    assert FeatureSpec.from_dict(saved) == spec
    with pytest.raises(SpecError, match="2 embedding views"):
        spec.embedding  # noqa: B018  (no single view to hand out)
    service = setup["stores"]["redis"].get_feature_service(spec.feature_service_name)
    assert spec.feature_service_name.endswith("_moon_v1_v2")
    assert [p.name for p in service.feature_view_projections][-2:] == ["item_moon_embedding_v1",
                                                                       "item_moon_embedding_v2"]


def test_training_gathers_the_views_concatenated_with_zeros_where_one_lacks_the_item(setup):
    spec, store = setup["spec"], setup["stores"]["sqlite"]
    table = moon_table(store, spec)
    assert table.shape == (spec.max_item_id + 1, 48)
    missing = setup["missing_v2"]
    assert not table[missing, 32:].any() and np.allclose(np.linalg.norm(table[missing, :32], axis=1), 1.0)
    present = np.setdiff1d(np.arange(1, spec.max_item_id + 1), missing)
    assert np.allclose(np.linalg.norm(table[present, 32:], axis=1), 1.0)
    v1 = spec.with_embedding(VIEWS[0])
    assert np.array_equal(table[:, :32], moon_table(store, v1))


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_online_readers_read_every_view_as_training_gathers_them(setup, backend):
    spec, store = setup["spec"], setup["stores"][backend]
    reader = OnlineReader(store, spec)
    user = int(users_with_history(setup["repo"], 3)[0])
    missing = int(setup["missing_v2"][1])
    lookup = reader.lookup(user, [missing, 3, 10**9])
    table = moon_table(setup["stores"]["sqlite"], spec)
    cand = lookup.candidates
    assert cand.embeddings.shape == (3, 48)
    assert np.array_equal(cand.embeddings[:2], table[[missing, 3]]) and not cand.embeddings[2].any()
    assert cand.embedding_found.tolist() == [False, True, False]  # found in every view only
    assert np.array_equal(lookup.history.embeddings, table[lookup.user.hist_item_ids])
    emb, found = reader.item_embeddings([3, missing], version=2)  # one view on request
    assert emb.shape == (2, 16) and found.tolist() == [True, False]
    reader.close()


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_offline_and_online_scores_agree(setup, backend):
    report = check_consistency(setup["stores"][backend], setup["model_dir"], n_rows=80, seed=1)
    assert report.ok, report.line()
    assert report.rows["online"].std() > 1e-4  # a real model's scores, varying with the row


def test_onnx_and_projected_items_score_as_offline(setup, tmp_path):
    repo, store = setup["repo"], setup["stores"]["redis"]
    pinned = tmp_path / "din_pinned"
    shutil.copytree(setup["model_dir"], pinned)
    assert main(["export", "--projected-items", "--repo", str(repo), "--model-dir", str(pinned)]) == 0
    for model_dir, backend in ((pinned, "torch"), (setup["model_dir"], "onnx")):
        result = check_consistency(store, model_dir, n_rows=60, seed=2, backend=backend)
        assert result.ok, f"{backend} {model_dir.name}: {result.line()}"


def test_the_scorer_reads_and_reports_every_view(setup):
    scorer = CTRScorer(setup["stores"]["redis"], setup["model_dir"])
    assert scorer.embedding_versions == (1, 2) and scorer.inputs.moon_dim == 48
    health = StoreHealth(scorer, ServingSettings(repo=str(setup["repo"]), model_dir=str(setup["model_dir"])))
    assert {"item_moon_embedding_v1", "item_moon_embedding_v2"} <= set(health.views)
    health.close()
    result = scorer.score_detailed(1, [3, int(setup["missing_v2"][1])])
    assert result.item_found.tolist() == [True, False]  # v2 lacks the second item: scored with zeros there
    scorer.close()
    assert main(["check-consistency", "--repo", str(setup["repo"]), "--model-dir", str(setup["model_dir"]),
                 "--rows", "40"]) == 0


@pytest.mark.tf
def test_the_tf_mirror_reads_the_concatenated_views_unchanged(setup):
    """The Keras DIN with the torch artifact's weights gives its logits on a two-view batch."""
    ctf = pytest.importorskip("ctr_models.tf", exc_type=ImportError)
    art, trained = load_model(setup["model_dir"], setup["spec"])
    data = training_data(setup["stores"]["sqlite"], trained, sample_rows(setup["stores"]["sqlite"], 64))
    batch = data.batch(slice(0, 64))
    assert batch.item_emb.shape == (64, 48) and batch.hist_emb.shape[-1] == 48
    feats = ctf.to_features(batch, art.inputs)
    keras = ctf.DIN(art.model.config, art.inputs)
    keras(feats, training=False)
    keras.load_torch(art.model)
    want = art.model.eval()(batch).detach().numpy()
    np.testing.assert_allclose(np.asarray(keras(feats, training=False)), want, atol=1e-5)


def test_an_artifact_refuses_a_repository_with_other_views(setup, tmp_path):
    """Trained on [v1, v2]: a spec with v1 only, or with the views in the other order, is refused
    by name, at training's load_model and at the scorer's load."""
    spec, model_dir, store = setup["spec"], setup["model_dir"], setup["stores"]["redis"]
    for other in (spec.with_embedding(VIEWS[0]), spec.with_embedding(VIEWS[::-1])):
        with pytest.raises(EmbeddingViewsMismatchError, match=r"item_moon_embedding_v1 \(d=32\), item_moon_embedding_v2"):
            load_model(model_dir, other)
        with pytest.raises(ModelStoreMismatchError, match="embedding views"):
            CTRScorer(store, model_dir, spec=other)
    load_model(model_dir, spec)  # its own views: accepted


def test_a_repository_rebuilt_with_one_view_refuses_the_two_view_model(setup, tmp_path):
    repo = tmp_path / "repo_v1"
    shutil.copytree(setup["repo"], repo)
    assert _build(setup["root"] / "shop", repo, "1").embeddings == VIEWS[:1]
    with pytest.raises(ModelStoreMismatchError, match=r"\[item_moon_embedding_v1 \(d=32\)\]"):
        CTRScorer(open_store(repo), setup["model_dir"])


def test_features_build_refuses_versions_without_a_source(setup, tmp_path, capsys):
    repo = tmp_path / "repo_bad"
    shutil.copytree(setup["repo"], repo)
    args = ["features", "build", "--data", str(setup["root"] / "shop"), "--repo", str(repo)]
    assert main(args + ["--embedding-versions", "1,3"]) == 2
    assert "no embedding source for version(s) [3]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--embedding-versions", "1,1"])
    with pytest.raises(RepoNotReadyError, match=r"\[5\]"):
        embedding_views_in(repo / DATA_DIR, (5,))
    with pytest.raises(SpecError, match="twice"):
        setup["spec"].with_embedding([VIEWS[0], VIEWS[0]])
