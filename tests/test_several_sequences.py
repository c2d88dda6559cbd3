"""Several behaviour sequences in one spec, end to end (issue #18 item 4).

A shop whose log has an event_type column (impression / click / purchase) is built with
`features build --sequence purchase=purchase`: beside the main sequence (every positive) the
spec has a purchase sequence, with its own view and push source. A DeepFM trained on both pools
each over its own length, a DIN + MOON attends over each with its own attention; both score
online as offline (Redis and SQLite; torch and their ONNX serving graphs), /events appends a
purchase to both sequences and a click to the main one only. The TF mirror's DeepFM and DIN give
torch's logits (general and shared-history paths, SavedModel). DIN's projected item view reads
one sequence and refuses such inputs by name.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
import torch
from fastapi.testclient import TestClient

from fixtures.serving_setup import users_with_history
from fixtures.store_repo import delete_project_keys, unique_project, unit_vectors, write_embedding_source
from ctr_models.din import DIN, DINConfig
from ctr_models.inputs import SequenceGroupsUnsupportedError
from ctr_models.item_projection import ItemProjection
from ctr_models.layers import FeatureEmbedding
from ctr_models.onnx_export import check_with_onnxruntime, export_onnx, onnx_bytes
from ctr_models.trainer import TrainerConfig
from moon_features.cli import main
from moon_features.consistency import check_consistency, sample_rows
from moon_features.data.layout import load_dataset
from moon_features.data.sequences import build_sequences, sequence_as_of
from moon_features.data.synthetic import generate_shop
from moon_features.fields import SequenceSpec, SequenceSpecError
from moon_features.serving.app import create_app
from moon_features.serving.events import EventService, StoreHealth
from moon_features.serving.request_replay import request_batch
from moon_features.serving.scorer import CTRScorer
from moon_features.serving.settings import ServingSettings
from moon_features.spec import FeatureSpec, SpecMismatchError
from moon_features.store import redis_codec
from moon_features.store.definitions import repo_objects
from moon_features.store.online_reader import OnlineReader
from moon_features.store.push import SequenceAppender
from moon_features.store.repo import (DATA_DIR, SPEC_FILE, apply_repo, init_repo, load_spec, materialize_all, open_store,
                                     sqlite_config)
from moon_features.store.sources import entity_rows
from moon_features.training.retrieval import training_data
from moon_features.training.train import load_model, train_from_feast

REDIS = "127.0.0.1:6379"
RAY_YAML = Path(__file__).resolve().parents[1] / "feature_repo" / "feature_store.ray.yaml"
PURCHASE = SequenceSpec("purchase", ("purchase",))
TINY_DEEPFM = {"embed_dim": 8, "dnn_hidden": (32, 16)}
TINY_DIN = {"embed_dim": 8, "dnn_hidden": (32, 16), "attention_hidden": (16, 8), "sim_heads": 4}


def _train(repo, out, model="deepfm", overrides=TINY_DEEPFM):
    rows = entity_rows(load_dataset(repo.parent / "shop")).sort_values("event_timestamp", kind="stable").tail(1500)
    train_from_feast(repo, rows, out, model=model, use_moon=True, model_overrides=overrides,
                     trainer_config=TrainerConfig(epochs=1, progress=False, seed=0))
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A Redis repo with a purchase sequence beside the main one, a tiny DeepFM + MOON and a tiny
    DIN + MOON trained on both, materialized on Redis and (same project) on SQLite."""
    root = tmp_path_factory.mktemp("several_sequences")
    ds = generate_shop(root / "shop", n_items=200, seed=0, progress=False, event_types=True)
    repo, project = root / "repo", unique_project()
    init_repo(repo, project=project, online="redis", redis_connection=REDIS)
    ids, ts = ds.items["item_id"].to_numpy(np.int64), ds.items["first_seen"].reset_index(drop=True)
    write_embedding_source(repo / DATA_DIR, 1, ids, unit_vectors(len(ids), 32, seed=1), ts)
    args = ["features", "build", "--data", str(root / "shop"), "--repo", str(repo), "--max-len", "20"]
    assert main(args + ["--sequence", "purchase=purchase"]) == 0
    store = open_store(repo)
    materialize_all(store)
    model_dir = _train(repo, root / "deepfm")
    din_dir = _train(repo, root / "din", model="din", overrides=TINY_DIN)
    (repo / "sqlite.yaml").write_text(sqlite_config(project))
    sqlite = open_store(repo, repo / "sqlite.yaml")
    sqlite.apply(list(repo_objects(repo).values()))
    materialize_all(sqlite)
    yield {"root": root, "repo": repo, "ds": ds, "spec": load_spec(repo), "model_dir": model_dir,
           "models": {"deepfm": model_dir, "din": din_dir}, "stores": {"redis": store, "sqlite": sqlite}}
    delete_project_keys(project, REDIS)


def test_the_spec_has_the_purchase_sequence_and_keeps_old_files_unchanged(setup):
    spec, repo = setup["spec"], setup["repo"]
    assert spec.sequences == (PURCHASE,)
    saved = json.loads((repo / SPEC_FILE).read_text())
    assert saved["sequences"] == [{"name": "purchase", "event_types": ["purchase"]}]
    assert FeatureSpec.from_dict(saved) == spec
    one = replace(spec, sequences=())
    assert "sequences" not in one.to_dict() and one.fingerprint() != spec.fingerprint()
    inputs = spec.model_inputs()
    assert inputs.sequence_groups == ("purchase",)
    assert [(s.name, s.group) for s in inputs.sequences] == [("hist_item_id", ""), ("hist_category", ""),
                                                            ("hist_purchase_item_id", "purchase")]
    assert "group" not in inputs.to_dict()["sequences"][0]  # the main sequence's fields as before
    assert ("user_behavior_sequence_purchase:hist_purchase_item_ids" in spec.feature_refs())
    service = setup["stores"]["redis"].get_feature_service(spec.feature_service_name)
    assert "user_behavior_sequence_purchase" in [p.name for p in service.feature_view_projections]
    with pytest.raises(SpecMismatchError, match="sequences"):
        spec.check_compatible(one)


def test_the_purchase_table_holds_the_purchases_before_each_row(setup):
    log = setup["ds"].interactions
    table = build_sequences(log, 20, ("purchase",))
    user = int(log.loc[log["event_type"] == "purchase", "user_id"].value_counts().index[0])
    mine = log[log["user_id"] == user].sort_values(["event_timestamp", "item_id"], kind="stable")
    when = mine["event_timestamp"].iloc[len(mine) // 2]
    bought = mine[(mine["event_type"] == "purchase") & (mine["event_timestamp"].dt.floor("s") < when.floor("s"))]
    assert sequence_as_of(table, user, when) == bought["item_id"].tolist()[-20:]
    assert len(bought) and len(bought) < int(((mine["label"] == 1) & (mine["event_timestamp"] < when)).sum())


def test_training_reads_each_sequence_with_its_own_length(setup):
    spec, store = setup["spec"], setup["stores"]["sqlite"]
    data = training_data(store, spec, sample_rows(store, 300))
    main_len, purchase_len = data.column("hist_len"), data.column("hist_purchase_len")
    assert (purchase_len <= main_len).all() and (purchase_len < main_len).any() and purchase_len.max() > 0
    batch = data.batch(slice(0, 300))
    assert torch.equal(batch.hist_lens["purchase"], torch.from_numpy(purchase_len))
    hist = data.column("hist_purchase_item_id")
    assert not hist[np.arange(20)[None, :] >= purchase_len[:, None]].any()  # padded past the length


def test_the_ray_offline_store_joins_every_sequence_as_duckdb(setup):
    """Feast's Ray store returns one-item lists as scalars; the repair covers every sequence's column."""
    ray = pytest.importorskip("ray", reason="needs moon-features[ray]")
    repo, store = setup["repo"], setup["stores"]["sqlite"]
    yaml = RAY_YAML.read_text().replace("project: moon_features", f"project: {store.config.project}")
    (repo / "ray.yaml").write_text(yaml)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = entity_rows(setup["ds"]).sample(n=300, random_state=0)  # distinct (user, time) keys, as logged
        a, b = training_data(store, setup["spec"], rows), training_data(apply_repo(repo, repo / "ray.yaml"),
                                                                       setup["spec"], rows)
    finally:
        if started:
            ray.shutdown()
    assert "hist_purchase_item_id" in a.arrays and (a.arrays["hist_purchase_len"] == 1).any()
    for name in a.arrays:
        assert np.array_equal(a.arrays[name], b.arrays[name]), name


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_online_readers_read_every_sequence(setup, backend):
    spec, store = setup["spec"], setup["stores"][backend]
    reader = OnlineReader(store, spec)
    table = build_sequences(setup["ds"].interactions, 20, ("purchase",))
    for user in users_with_history(setup["repo"], 3)[:5]:
        lookup = reader.lookup(int(user), [3, 4])
        want = table[table["user_id"] == user].sort_values("event_timestamp")["hist_item_ids"].iloc[-1]
        assert lookup.user.histories["purchase"].tolist() == list(want)
        assert "hist_purchase_item_ids" not in lookup.user.profile
    reader.close()


@pytest.mark.parametrize("model", ["deepfm", "din"])
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_offline_and_online_scores_agree(setup, backend, model):
    report = check_consistency(setup["stores"][backend], setup["models"][model], n_rows=80, seed=1)
    assert report.ok, report.line()
    assert report.rows["online"].std() > 1e-4


@pytest.mark.parametrize("model", ["deepfm", "din"])
def test_the_model_reads_the_purchase_sequence(setup, model):
    art, trained = load_model(setup["models"][model], setup["spec"])
    data = training_data(setup["stores"]["sqlite"], trained, sample_rows(setup["stores"]["sqlite"], 200))
    batch = data.batch(slice(0, 200))
    assert int((batch.hist_lens["purchase"] > 0).sum()) > 10
    model = art.model.eval()
    with torch.no_grad():
        before = model(batch)
        batch.hist_lens["purchase"] = torch.zeros_like(batch.hist_lens["purchase"])
        after = model(batch)
    changed = (before - after).abs() > 1e-7
    assert changed.any() and not changed[data.column("hist_purchase_len") == 0].any()


def test_events_append_a_purchase_to_both_sequences_and_a_click_to_the_main_one(setup, tmp_path):
    store = setup["stores"]["redis"]
    scorer = CTRScorer(store, setup["model_dir"])
    settings = ServingSettings(repo=str(setup["repo"]), model_dir=str(setup["model_dir"]),
                               event_types="click,purchase")
    health = StoreHealth(scorer, settings)
    assert "user_behavior_sequence_purchase" in health.views
    events = EventService(scorer, settings, health)
    user = int(users_with_history(setup["repo"], 3)[0])
    before = scorer.reader.user_features(user)
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    events.append(user, 7, now, event_type="purchase")
    events.append(user, 9, now, event_type="click")
    after = scorer.reader.user_features(user)
    assert after.hist_item_ids.tolist()[-2:] == [7, 9]
    assert after.histories["purchase"].tolist() == (before.histories["purchase"].tolist() + [7])[-20:]
    events.close()
    health.close()
    scorer.close()


def test_an_event_enters_all_of_its_sequences_or_none_on_redis(setup):
    """One script appends to every sequence an event names: a purchase sequence row it cannot read
    fails the whole event, and the main sequence is left as it was (no half-stored event)."""
    store, spec = setup["stores"]["redis"], setup["spec"]
    appender = SequenceAppender(store, spec)
    user = int(users_with_history(setup["repo"], 3)[1])
    (key,) = redis_codec.redis_keys("user_id", [user], store.config.project)
    purchase_field = appender._fields[appender.further["purchase"]][0]
    client = redis.Redis.from_url(f"redis://{REDIS}")
    saved = client.hget(key, purchase_field)
    before = OnlineReader(store, spec).user_features(user).hist_item_ids.tolist()
    try:
        client.hset(key, purchase_field, b"not a sequence")
        with pytest.raises(redis.exceptions.ResponseError, match="not an int64 list"):
            appender.append(user, 13, pd.Timestamp.now(tz="UTC"), also=("purchase",))
        assert OnlineReader(store, spec).user_features(user).hist_item_ids.tolist() == before
    finally:
        client.hset(key, purchase_field, saved) if saved is not None else client.hdel(key, purchase_field)
        client.close()
        appender.close()
    row = SequenceAppender(store, spec).append(user, 13, pd.Timestamp.now(tz="UTC"), also=("purchase",))
    assert row["hist_item_ids"].tolist() == (before + [13])[-spec.max_len:]
    assert OnlineReader(store, spec).user_features(user).histories["purchase"].tolist()[-1] == 13


def test_the_http_service_reports_and_appends_every_sequence(setup):
    """/health lists the purchase view; a purchase sent to /events changes /score's next answer
    (the DeepFM pools the purchase sequence the event extended)."""
    settings = ServingSettings(repo=str(setup["repo"]), model_dir=str(setup["model_dir"]), event_types="click,purchase")
    user = int(users_with_history(setup["repo"], 3)[1])
    candidates = [3, 4, 5, 6]
    with TestClient(create_app(settings)) as client:
        assert "user_behavior_sequence_purchase" in client.get("/health").json()["views"]
        before = client.post("/score", json={"user_id": user, "candidate_item_ids": candidates}).json()["scores"]
        for event_type in ("click", "purchase"):
            answer = client.post("/events", json={"user_id": user, "item_id": 11, "event_type": event_type})
            assert answer.status_code == 200, answer.text
        after = client.post("/score", json={"user_id": user, "candidate_item_ids": candidates}).json()["scores"]
        client.app.state.scorer.close()
    assert before != after
    reader = OnlineReader(setup["stores"]["redis"], setup["spec"])
    row = reader.user_features(user)
    assert row.hist_item_ids.tolist()[-2:] == [11, 11] and row.histories["purchase"].tolist()[-1] == 11
    reader.close()


def test_din_has_one_attention_per_sequence_and_what_reads_one_refuses_by_name(setup, capsys):
    art, _ = load_model(setup["models"]["din"], setup["spec"])
    assert list(art.model.group_attention) == ["purchase"] and art.model.group_attention["purchase"].dim == 8
    one = DIN(DINConfig(embed_dim=8), replace(setup["spec"], sequences=()).model_inputs(use_moon=False))
    assert not any(k.startswith("group_attention") for k in one.state_dict())  # one sequence: as before
    with pytest.raises(SequenceGroupsUnsupportedError, match="projected item view of DIN"):
        ItemProjection(art.model.eval())
    with pytest.raises(SequenceGroupsUnsupportedError, match=r"reads one behaviour sequence.*\['purchase'\]"):
        FeatureEmbedding(art.inputs, 8)  # a model that does not opt in (sequence_groups=True)
    args = ["export", "--projected-items", "--repo", str(setup["repo"]), "--model-dir", str(setup["models"]["din"])]
    assert main(args) == 2  # ProjectedItemsUnsupportedError: a message, no traceback
    assert "projected item view of DIN reads one behaviour sequence" in capsys.readouterr().err
    assert not (setup["models"]["din"] / "projected_items.json").exists()


@pytest.mark.parametrize("model", ["deepfm", "din"])
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_the_onnx_graph_reads_each_sequence_as_torch(setup, backend, model, tmp_path):
    """The DeepFM / DIN graph takes each sequence cut to its own valid items; same scores as offline."""
    ort = pytest.importorskip("onnxruntime")
    report = check_consistency(setup["stores"][backend], setup["models"][model], n_rows=60, seed=3, backend="onnx")
    assert report.ok, report.line()
    art, _ = load_model(setup["models"][model], setup["spec"])
    names = [i.name for i in ort.InferenceSession(onnx_bytes(art.model)).get_inputs()]
    assert "hist_purchase_item_id" in names
    path = export_onnx(art.model, tmp_path / f"{model}.onnx")  # the file `moon-features export` writes
    assert check_with_onnxruntime(art.model, path) < 1e-5


@pytest.mark.tf
@pytest.mark.parametrize("name", ["deepfm", "din"])
def test_the_tf_mirror_reads_each_sequence_as_torch(setup, name, tmp_path):
    """The Keras DeepFM / DIN with the torch weights: torch's logits on a two-sequence batch, on
    one request's shared history, after a SavedModel round trip (both signatures), and in training mode."""
    ctf = pytest.importorskip("ctr_models.tf", exc_type=ImportError)
    art, trained = load_model(setup["models"][name], setup["spec"])
    store = setup["stores"]["sqlite"]
    data = training_data(store, trained, sample_rows(store, 64))
    batch, model = data.batch(slice(0, 64)), art.model.eval()
    feats = ctf.to_features(batch, art.inputs)
    assert "hist_purchase_len" in feats and (feats["hist_purchase_len"] != feats["hist_len"]).any()
    keras = {"deepfm": ctf.DeepFM, "din": ctf.DIN}[name](art.model.config, art.inputs)
    keras(feats, training=False)
    keras.load_torch(model)
    with torch.no_grad():
        want = model(batch).numpy()
        request = request_batch(data, int(np.argmax(data.column("hist_purchase_len"))), np.arange(10))
        want_request = model(request).numpy()
    np.testing.assert_allclose(np.asarray(keras(feats, training=False)), want, atol=1e-5)
    got = keras(ctf.to_features(request, art.inputs), training=False, shared_history=True)
    np.testing.assert_allclose(np.asarray(got), want_request, atol=1e-5)
    loaded = ctf.load_tf_artifact(ctf.save_tf_artifact(keras, tmp_path / f"tf_{name}", extra=art.extra))
    np.testing.assert_allclose(loaded.logits(batch), want, atol=1e-5)
    np.testing.assert_allclose(loaded.logits(request), want_request, atol=1e-5)  # score_request
    model.train()  # training mode too: Dice's batch statistics, each attention over its own valid items
    with torch.no_grad():
        want_train = model(batch).numpy()
    np.testing.assert_allclose(np.asarray(keras(feats, training=True)), want_train, rtol=1e-4, atol=1e-4)


def test_features_build_refuses_a_log_without_event_types_and_bad_names(setup, tmp_path, capsys):
    shop = tmp_path / "plain"
    generate_shop(shop, n_items=60, seed=1, progress=False)
    args = ["features", "build", "--data", str(shop), "--repo", str(tmp_path / "repo")]
    assert main(args + ["--sequence", "purchase=purchase"]) == 2
    assert "lacks" in capsys.readouterr().err
    args[3] = str(setup["root"] / "shop")
    assert main(args + ["--sequence", "cart=add_to_cart"]) == 2
    assert "no positive event of type(s) ['add_to_cart']" in capsys.readouterr().err
    for bad in ("Purchase=purchase", "purchase", "purchase="):
        with pytest.raises(SequenceSpecError):
            SequenceSpec.parse(bad)
