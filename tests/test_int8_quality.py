"""Issue #17's int8 bound on a trained model: a small DIN + MOON trained from Feast on a generated
shop, quantized the product's way (the onnx-int8 backend: OnnxScoringModel -> quantize_int8 of the
exported graph), scored on the test split `train` holds out, each row as a serving request
(serving/request_replay.py). Bound: every score within 1e-3 of fp32, test AUC within 0.001."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from ctr_models.metrics import ctr_metrics  # noqa: E402
from ctr_models.trainer import Trainer, TrainerConfig  # noqa: E402
from fixtures.serving_setup import TINY_DIN  # noqa: E402
from fixtures.store_repo import build_repo  # noqa: E402
from moon_features.data.layout import load_dataset  # noqa: E402
from moon_features.serving.onnx_model import OnnxScoringModel  # noqa: E402
from moon_features.serving.request_replay import replay_scores, request_batch, torch_scores  # noqa: E402
from moon_features.store.repo import apply_repo, open_store  # noqa: E402
from moon_features.store.sources import entity_rows  # noqa: E402
from moon_features.training.retrieval import training_data  # noqa: E402
from moon_features.training.train import load_model, time_split, train_from_feast  # noqa: E402

REQUEST = 200  # bench/serving.py's request: int8's activation ranges are taken over the whole request


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """(model, trained spec, test-split CTRData, fp32 scores, the AUC `train` stored)."""
    root = tmp_path_factory.mktemp("int8_quality")
    repo, _ = build_repo(root, online="sqlite", n_items=500, dim=32, max_len=20)
    apply_repo(repo)
    rows = entity_rows(load_dataset(root / "shop"))
    train_from_feast(repo, rows, root / "model", use_moon=True, model_overrides=TINY_DIN,
                     trainer_config=TrainerConfig(epochs=3, progress=False, seed=0))
    art, trained = load_model(root / "model")
    data = training_data(open_store(repo), trained, time_split(rows)[2], use_moon=True)
    fp32 = Trainer(TrainerConfig(progress=False)).predict(art.model, data)
    stored = json.loads((root / "model" / "config.json").read_text())["metrics"]["test"]["auc"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one request per worker, as served; restored for the tests after these
    yield art.model, trained, data, fp32, stored
    torch.set_num_threads(threads)


def test_a_replayed_request_scores_the_row_as_training_does(held_out):
    """The replay is faithful: in fp32 a row scored inside a 200-candidate request (torch and onnx
    backends) gets its training-path score, so a difference under int8 is int8's alone."""
    model, trained, data, fp32, stored = held_out
    auc = ctr_metrics(data.labels, fp32)["auc"]
    assert abs(auc - stored) < 1e-9 and auc > 0.55  # the AUC `train` reported; the model learned something
    sub = data.subset(np.arange(60))
    for score in (torch_scores(model), OnnxScoringModel(model, "onnx").scores):
        got = replay_scores(score, sub, request_size=REQUEST, user_dense=trained.user_dense)
        assert np.abs(got - fp32[:60]).max() <= 1e-5
    batch = request_batch(data, 7, np.array([1, 2, 3]), trained.user_dense)
    assert batch.shared_history and (batch.sparse["user_id"] == int(data.column("user_id")[7])).all()
    assert batch.sparse["item_id"].tolist() == data.column("item_id")[[7, 1, 2, 3]].tolist()


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="#17's int8 bound is not met by onnxruntime's dynamic int8 on a trained DIN: here "
                          "(ce2a67b) test AUC 0.5978 -> 0.6019, max |score diff| 3.1e-02; on the demo model AUC "
                          "-0.0018, max 1.2e-01, nearly all from the MLP's first layer (docs/benchmarks.md, "
                          "'int8 quality'). strict: when int8 meets the bound this turns red: drop the mark")
def test_int8_keeps_scores_within_1e3_and_test_auc_within_0_001(held_out):
    model, trained, data, fp32, _ = held_out
    int8 = replay_scores(OnnxScoringModel(model, "onnx-int8").scores, data, request_size=REQUEST,
                         user_dense=trained.user_dense)
    auc_fp32, auc_int8 = (ctr_metrics(data.labels, s)["auc"] for s in (fp32, int8))
    worst = float(np.abs(int8 - fp32).max())
    assert len(data) >= 500 and worst > 0  # held-out rows, really quantized
    assert abs(auc_int8 - auc_fp32) <= 0.001 and worst <= 1e-3, \
        f"test AUC {auc_fp32:.5f} fp32 -> {auc_int8:.5f} int8, max |score diff| {worst:.2e}"
