"""ONNX export of the serving graph: equal to the torch models (DIN, DeepFM; shared history of any
length, 0 included), the config options kept in step, the CLI, and a file that plain onnxruntime
runs in a process that imports nothing of this package (nor torch)."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
import onnxruntime as ort  # noqa: E402

from ctr_models.artifact import save_pretrained  # noqa: E402
from ctr_models.batch import CTRBatch  # noqa: E402
from ctr_models.config import ConfigError  # noqa: E402
from ctr_models.deepfm import DeepFM, DeepFMConfig  # noqa: E402
from ctr_models.din import DIN, DINConfig  # noqa: E402
from ctr_models.inputs import SequenceField  # noqa: E402
from ctr_models.onnx_export import onnx_bytes, quantize_int8  # noqa: E402
from ctr_models.serving_graph import GRAPH_CONFIG_FIELDS, graph_input_names, serving_graph  # noqa: E402
from fixtures.ctr_data import tiny_inputs  # noqa: E402
from moon_features.cli import main as moon_cli  # noqa: E402

INPUTS = tiny_inputs(n_users=30, n_items=80, max_len=12, moon_dim=16, dense=("price",))


def trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Weights and running statistics away from their initial values, so every term matters."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def request(n_rows: int, n_hist: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One request in the graph's layout; ids include 0 (padding / unknown) and out-of-vocabulary ones."""
    r = np.random.default_rng(seed)
    return {"user_id": np.full(n_rows, 4), "item_id": r.integers(0, 90, n_rows), "cat": r.integers(0, 9, n_rows),
            "price": r.normal(size=n_rows).astype(np.float32), "hist_item_id": r.integers(1, 81, n_hist),
            "hist_cat": r.integers(1, 9, n_hist), "item_emb": r.normal(size=(n_rows, 16)).astype(np.float32),
            "hist_emb": r.normal(size=(n_hist, 16)).astype(np.float32)}


def torch_scores(model, f: dict) -> np.ndarray:
    """The model's own forward on the padded, shared-history CTRBatch of that request."""
    b, n, L = len(f["item_id"]), len(f["hist_item_id"]), INPUTS.max_len
    emb = np.zeros((L, 16), np.float32)
    emb[:n] = f["hist_emb"]
    batch = CTRBatch(sparse={k: torch.from_numpy(f[k]) for k in ("user_id", "item_id", "cat")},
                     dense={"price": torch.from_numpy(f["price"])}, hist_len=torch.full((b,), n),
                     hist={k: torch.from_numpy(np.pad(f[k], (0, L - n))).expand(b, -1)
                           for k in ("hist_item_id", "hist_cat")},
                     item_emb=torch.from_numpy(f["item_emb"]), hist_emb=torch.from_numpy(emb).expand(b, -1, -1),
                     shared_history=True)
    with torch.inference_mode():
        return torch.sigmoid(model(batch)).numpy()


MODELS = {
    "din": lambda: DIN(DINConfig(use_moon=True, embed_dim=8, attention_hidden=(16, 8), dnn_hidden=(32, 16)), INPUTS),
    "din_softmax_product": lambda: DIN(DINConfig(use_moon=True, embed_dim=8, attention_norm="softmax",
                                                 interest_product=True, attention_act="prelu"), INPUTS),
    "din_ids_only": lambda: DIN(DINConfig(use_moon=False, embed_dim=8, fuse_similarity=False), INPUTS),
    "deepfm": lambda: DeepFM(DeepFMConfig(use_moon=True, embed_dim=8, dnn_hidden=(32, 16)), INPUTS),
    "deepfm_no_sequences": lambda: DeepFM(DeepFMConfig(use_moon=True, embed_dim=8, sequence_pooling="none",
                                                       dnn_act="dice"), INPUTS),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnxruntime_equals_torch_for_any_batch_and_history(name):
    model = trained_like(MODELS[name]())
    session = ort.InferenceSession(onnx_bytes(model), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]  # the exporter drops inputs a model never reads
    assert set(names) <= set(graph_input_names(model.inputs))
    for n_rows, n_hist, seed in [(200, 12, 0), (7, 5, 1), (1, 1, 2), (5, 0, 3)]:
        f = request(n_rows, n_hist, seed)
        want = torch_scores(model, f)
        got = session.run(["score"], {k: f[k] for k in names})[0]
        assert got.shape == (n_rows,)
        assert np.abs(got - want).max() <= 1e-5, (name, n_rows, n_hist)
        assert want.std() > 1e-3 or n_rows == 1  # real, varying scores: agreement is not trivial


def test_int8_quantized_graph_stays_close_and_quantizes():
    model = trained_like(MODELS["din"]())
    fp32 = onnx_bytes(model)
    int8 = quantize_int8(fp32)
    ops = {n.op_type for n in __import__("onnx").load_from_string(int8).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul"}, ops  # the weights really are int8
    f = request(200, 12)
    outs = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(["score"], f)[0] for m in (fp32, int8)]
    # an approximation, not a copy: random weights of this size are harsh on int8, so only the ranking
    # is checked here; the 1e-3 bound on trained models is tests/test_serving_onnx.py's
    assert np.abs(outs[0] - outs[1]).max() > 0
    assert np.corrcoef(outs[0], outs[1])[0, 1] > 0.95


def test_graph_config_fields_follow_the_model_configs():
    """A new config option must be implemented by the serving graph (or export refuses the model)."""
    assert GRAPH_CONFIG_FIELDS["din"] == {f.name for f in dataclasses.fields(DINConfig)}
    assert GRAPH_CONFIG_FIELDS["deepfm"] == {f.name for f in dataclasses.fields(DeepFMConfig)}
    model = MODELS["din"]()
    model.config = dataclasses.make_dataclass("X", [("brand_new", bool, True)], bases=(DINConfig,))()
    with pytest.raises(ConfigError, match="brand_new"):
        serving_graph(model)


STANDALONE = """
import json, sys
import numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
f = {k: np.asarray(v, dtype=np.int64 if k in ("user_id", "item_id", "cat", "hist_item_id", "hist_cat")
                   else np.float32) for k, v in json.loads(sys.argv[2]).items()}
out = s.run(["score"], f)[0]
assert not any(m.split(".")[0] in ("torch", "moon_features", "ctr_models") for m in sys.modules)
print(json.dumps({"score": out.tolist(), "inputs": [(i.name, i.shape) for i in s.get_inputs()]}))
"""


def test_cli_export_runs_in_plain_onnxruntime(tmp_path, capsys):
    model = trained_like(MODELS["din"]())
    save_pretrained(model, tmp_path / "art")
    assert moon_cli(["export", "--format", "onnx", "--model-dir", str(tmp_path / "art"),
                     "--out", str(tmp_path / "m.onnx")]) in (0, None)
    line = capsys.readouterr().out
    assert "inputs: user_id, item_id, cat, price, hist_item_id, hist_cat, item_emb, hist_emb" in line
    f = request(9, 4)
    out = subprocess.run([sys.executable, "-c", STANDALONE, str(tmp_path / "m.onnx"),
                          json.dumps({k: v.tolist() for k, v in f.items()})],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout)
    assert np.abs(np.array(answer["score"]) - torch_scores(model, f)).max() <= 1e-5
    assert dict(answer["inputs"])["hist_emb"] == ["history", 16] and dict(answer["inputs"])["item_id"] == ["batch"]
    assert moon_cli(["export", "--model-dir", str(tmp_path / "art"), "--out", str(tmp_path / "q.onnx"),
                     "--quantize", "int8"]) in (0, None)
    ops = {n.op_type for n in __import__("onnx").load(tmp_path / "q.onnx").graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul"}, ops


TWO_SEQUENCES = dataclasses.replace(INPUTS, sequences=INPUTS.sequences + (
    SequenceField("hist_purchase_item_id", "item_id", group="purchase"),))


@pytest.mark.parametrize("model_type", ["din", "deepfm"])
def test_a_second_sequence_is_read_over_its_own_items_as_torch(model_type):
    """A purchase sequence beside the main one: its own length (0 included) in the graph as in torch."""
    cls, config = {"din": (DIN, DINConfig), "deepfm": (DeepFM, DeepFMConfig)}[model_type]
    model = trained_like(cls(config(use_moon=True, embed_dim=8, dnn_hidden=(32, 16)), TWO_SEQUENCES))
    session = ort.InferenceSession(onnx_bytes(model), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert "hist_purchase_item_id" in names
    for n_rows, n_hist, n_bought, seed in [(9, 12, 3, 0), (6, 4, 0, 1), (5, 0, 2, 2), (1, 2, 12, 3)]:
        f = request(n_rows, n_hist, seed)
        bought = np.random.default_rng(seed).integers(1, 81, n_bought)
        b, L = n_rows, INPUTS.max_len
        emb = np.zeros((L, 16), np.float32)
        emb[:n_hist] = f["hist_emb"]
        hist = {k: torch.from_numpy(np.pad(v, (0, L - len(v)))).expand(b, -1)
                for k, v in (("hist_item_id", f["hist_item_id"]), ("hist_cat", f["hist_cat"]),
                             ("hist_purchase_item_id", bought))}
        batch = CTRBatch(sparse={k: torch.from_numpy(f[k]) for k in ("user_id", "item_id", "cat")},
                         dense={"price": torch.from_numpy(f["price"])}, hist_len=torch.full((b,), n_hist),
                         hist=hist, hist_lens={"purchase": torch.full((b,), n_bought)},
                         item_emb=torch.from_numpy(f["item_emb"]), hist_emb=torch.from_numpy(emb).expand(b, -1, -1))
        with torch.inference_mode():
            want = torch.sigmoid(model(batch)).numpy()
            batch.shared_history = True
            assert np.abs(torch.sigmoid(model(batch)).numpy() - want).max() <= 1e-6  # the shared path too
        got = session.run(["score"], {k: {**f, "hist_purchase_item_id": bought}[k] for k in names})[0]
        assert np.abs(got - want).max() <= 1e-5, (model_type, n_rows, n_hist, n_bought)
    with torch.inference_mode():  # the purchase sequence matters
        batch.hist_lens["purchase"] = torch.zeros_like(batch.hist_lens["purchase"])
        assert np.abs(torch.sigmoid(model(batch)).numpy() - want).max() > 1e-4
