"""Export a model's serving graph (ctr_models.serving_graph) to ONNX, optionally int8-quantized.

The file runs in plain onnxruntime (or Triton's onnxruntime backend) without this package: its
inputs are named after the model's fields, with a dynamic batch axis (candidates) and a dynamic
history axis (see serving_graph for the layout); the outputs are `logit` and `score`.

int8: onnxruntime's dynamic quantization of the MatMul / Gemm weights (per-channel int8
weights, activations quantized per call). Whether it pays is a measurement (docs/benchmarks.md).
"""
from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from .artifact import from_pretrained
from .serving_graph import dynamic_axes, example_inputs, graph_input_names, serving_graph

OPSET = 17
OUTPUT_NAMES = ("logit", "score")
FORMATS = ("onnx", "onnx-int8")
PROJECTION_INPUTS = ("request", "cand", "hist")


class OnnxExportError(ValueError):
    """The model cannot be exported, or the export tools (the `onnx` extra) are missing."""


def onnx_bytes(model: nn.Module) -> bytes:
    """The model's serving graph as an ONNX model (fp32), with its input layout in the metadata."""
    graph = serving_graph(model)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's notes on Python ints: the layout has none that vary
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, example_inputs(model.inputs), buf, input_names=graph.input_names,
                          output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes(model.inputs),
                          opset_version=OPSET, dynamo=False)
    return _with_metadata(buf.getvalue(), model)


def projection_onnx_bytes(projection: nn.Module) -> bytes:
    """ItemProjection's per-request forward (request [1, H], cand [B, W], hist [n, W] -> logit [B]) as
    ONNX fp32, B and n dynamic: the projected item view's model call in onnxruntime."""
    h = projection.widths["u"]
    example = (torch.zeros(1, h), torch.zeros(3, projection.width), torch.zeros(2, projection.width))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(projection, example, buf, input_names=list(PROJECTION_INPUTS), output_names=["logit"],
                          dynamic_axes={"cand": {0: "batch"}, "hist": {0: "history"}, "logit": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def _with_metadata(data: bytes, model: nn.Module) -> bytes:
    try:
        import onnx
    except ImportError as e:
        raise OnnxExportError("ONNX export needs the onnx extra: pip install 'moon-features[onnx]'") from e
    proto = onnx.load_from_string(data)
    meta = {"model_type": model.config.model_type, "inputs": json.dumps(model.inputs.to_dict()),
            "input_names": json.dumps(graph_input_names(model.inputs)), "layout": "shared-history"}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"moon_features.{key}", value
    return proto.SerializeToString()


def quantize_int8(data: bytes) -> bytes:
    """onnxruntime's dynamic int8 quantization of an fp32 ONNX model's MatMul / Gemm weights."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise OnnxExportError("int8 quantization needs the onnx extra: pip install 'moon-features[onnx]'") from e
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
        return onnx.load(dst).SerializeToString()


def export_onnx(model: nn.Module, out: str | Path, fmt: str = "onnx") -> Path:
    """Write the model's serving graph to `out` as fp32 ("onnx") or int8 ("onnx-int8")."""
    if fmt not in FORMATS:
        raise OnnxExportError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}")
    data = onnx_bytes(model)
    if fmt == "onnx-int8":
        data = quantize_int8(data)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def check_with_onnxruntime(model: nn.Module, path: str | Path, batch: int = 7, history: int = 5) -> float:
    """max |score| difference between plain onnxruntime on the file and the torch serving graph
    on one example input (the file stands alone: nothing of this package is needed to run it)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise OnnxExportError("checking the export needs onnxruntime: pip install 'moon-features[onnx]'") from e
    graph = serving_graph(model)
    example = example_inputs(model.inputs, batch, history)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["score"], {n: t.numpy() for n, t in zip(graph.input_names, example)})[0]
    with torch.inference_mode():
        want = graph(*example)[1].numpy()
    return float(abs(got - want).max())


def export_artifact(model_dir: str | Path, out: str | Path, fmt: str = "onnx") -> tuple[Path, float, list[str]]:
    """`moon-features export`: an artifact folder -> ONNX file; (path, check difference, input names)."""
    model = from_pretrained(model_dir).model
    path = export_onnx(model, out, fmt)
    return path, check_with_onnxruntime(model, path), graph_input_names(model.inputs)
