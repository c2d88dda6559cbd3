"""The scorer's onnxruntime backend: the artifact's serving graph, exported at load, run by ORT.

Exporting at load (about 2 s) instead of reading a file keeps one source of truth: the scores come
from the very weights the artifact holds, so an ONNX file can never drift from the artifact it is
served with. `moon-features export` writes the same graph to a file for onnxruntime or Triton
without this package.

A request's CTRBatch (shared history, from serving.batch) becomes the graph's feeds without a
copy: per-row arrays as they are, the one history cut to its valid items.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from ctr_models.batch import BatchShapeError, CTRBatch
from ctr_models.onnx_export import PROJECTION_INPUTS, onnx_bytes, projection_onnx_bytes, quantize_int8
from ctr_models.serving_graph import graph_input_names

ONNX_BACKENDS = ("onnx", "onnx-int8")


def session_options(threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return so


class OnnxScoringModel:
    """model(batch) -> float32 scores [B], run by onnxruntime (fp32 or int8 weights)."""

    def __init__(self, model: nn.Module, backend: str = "onnx", threads: int = 1):
        if backend not in ONNX_BACKENDS:
            raise ValueError(f"unknown ONNX backend {backend!r}; choose one of {list(ONNX_BACKENDS)}")
        data = onnx_bytes(model)
        if backend == "onnx-int8":
            data = quantize_int8(data)
        self.backend = backend
        self.inputs = model.inputs
        self.session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
        # the exporter drops inputs the model never reads (e.g. DeepFM without sequence pooling)
        self.names = [i.name for i in self.session.get_inputs()]
        assert set(self.names) <= set(graph_input_names(model.inputs))

    def feeds(self, batch: CTRBatch) -> dict[str, np.ndarray]:
        if not batch.shared_history:
            raise BatchShapeError("the ONNX graph scores one request (shared_history=True); "
                                  "score training batches with the torch model")
        n = int(batch.hist_len[0]) if batch.size else 0
        out = {name: t.numpy() for name, t in batch.sparse.items()}
        out.update({name: t.numpy() for name, t in batch.dense.items()})
        out.update({name: t[0, :n].numpy() for name, t in batch.hist.items()})
        for s in self.inputs.sequences:  # a sequence group's fields: cut to their own length
            if s.group:
                out[s.name] = batch.hist[s.name][0, :int(batch.hist_lens[s.group][0]) if batch.size else 0].numpy()
        if self.inputs.moon_dim is not None:
            out["item_emb"] = batch.item_emb.numpy()
            out["hist_emb"] = batch.hist_emb[0, :n].numpy()
        return {name: out[name] for name in self.names}

    def scores(self, batch: CTRBatch) -> np.ndarray:
        batch.validate(self.inputs)
        return self.session.run(["score"], self.feeds(batch))[0]


class OnnxProjectionModel:
    """The projected item view's model call (ctr_models.item_projection) in onnxruntime, fp32:
    (request part, candidate rows, history rows) -> float32 scores [B]."""

    def __init__(self, projection: nn.Module, threads: int = 1):
        self.session = ort.InferenceSession(projection_onnx_bytes(projection), session_options(threads),
                                            providers=["CPUExecutionProvider"])

    def scores(self, inputs) -> np.ndarray:
        logit = self.session.run(["logit"], {n: t.numpy() for n, t in zip(PROJECTION_INPUTS, inputs)})[0]
        return torch.sigmoid(torch.from_numpy(logit)).numpy()
