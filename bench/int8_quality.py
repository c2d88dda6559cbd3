"""int8 quality (#17): does onnxruntime's dynamic int8 quantization keep the demo model's test AUC?

The bound of issue #17: int8 scores within 1e-3 of fp32, and test AUC changing by <= 0.001.

Model: DIN + MOON of `moon-features demo` (synthetic shop, demo encoder, 3 epochs), from a finished
demo folder (--demo-dir, with --repo its Feast repo) or trained by this script in a temporary
folder (the demo's own code, run_demo). Rows: the test split `train` holds out (the last 10% by
time, training/train.py), with point-in-time features from the offline store.

Scores compared on the same rows:
  fp32         the torch model on the training path (Trainer.predict): the AUC `train` reports
  torch        the torch backend on serving's shared-history request (should equal fp32: checks
               the replay)
  onnx         the onnx backend (fp32 onnxruntime), same requests
  onnx-int8    the onnx-int8 backend: CTRScorer's OnnxScoringModel, i.e. quantize_int8 of the
               exported graph, the product's int8 path
Each test row is scored as the first candidate of a request (serving/request_replay.py): alone
(--request-sizes 1) and beside 199 other candidates (200, bench/serving.py's request size), since
dynamic quantization scales activations over the whole request.

With --by-node, each weight product that the int8 path quantizes is also quantized alone (same
settings, onnxruntime's nodes_to_quantize) and replayed at the largest request size: which
layer's quantization moves the scores.

    python bench/int8_quality.py [--demo-dir runs/demo --repo feature_repo] [--items 1000] [--seed 0]
        [--request-sizes 1,200] [--by-node] [--out runs/int8_quality]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ctr_models.metrics import ctr_metrics  # noqa: E402
from ctr_models.onnx_export import onnx_bytes, quantize_int8  # noqa: E402
from ctr_models.trainer import Trainer, TrainerConfig  # noqa: E402
from moon_features.data.layout import load_dataset  # noqa: E402
from moon_features.demo import run_demo  # noqa: E402
from moon_features.idmap import coded_dataset  # noqa: E402
from moon_features.serving.onnx_model import OnnxScoringModel, session_options  # noqa: E402
from moon_features.serving.request_replay import replay_scores, torch_scores  # noqa: E402
from moon_features.store.repo import open_store  # noqa: E402
from moon_features.store.sources import entity_rows  # noqa: E402
from moon_features.training.retrieval import training_data  # noqa: E402
from moon_features.training.train import load_model, time_split  # noqa: E402

SCORE_BOUND, AUC_BOUND = 1e-3, 1e-3


def demo_model(args) -> tuple[Path, Path, Path]:
    """(shop, repo, din_moon artifact): the given demo run, or a fresh one in a temporary folder."""
    if args.demo_dir:
        demo = Path(args.demo_dir)
        return demo / "shop", Path(args.repo), demo / "models" / "din_moon"
    demo = Path(tempfile.mkdtemp(prefix="int8_quality_"))
    print(f"running the demo in {demo} (--demo-dir reuses a finished one)", flush=True)
    run_demo(demo / "demo", demo / "repo", n_items=args.items, seed=args.seed)
    return demo / "demo" / "shop", demo / "repo", demo / "demo" / "models" / "din_moon"


def auc(labels, scores, users) -> dict:
    m = ctr_metrics(labels, scores, users)
    return {"auc": float(m["auc"]), "gauc": float(m.get("gauc", float("nan")))}


def compare(name: str, scores: np.ndarray, fp32: np.ndarray, labels, users, base: dict) -> dict:
    diff = np.abs(scores.astype(np.float64) - fp32)
    m = auc(labels, scores, users)
    return {"backend": name, **m, "auc_change": m["auc"] - base["auc"], "gauc_change": m["gauc"] - base["gauc"],
            "max_abs_diff": float(diff.max()), "p99_abs_diff": float(np.percentile(diff, 99)),
            "mean_abs_diff": float(diff.mean())}


def quantized_nodes(fp32: bytes) -> list[str]:
    """Names (in the fp32 graph, after onnxruntime's Gemm -> MatMul + Add) of the products the
    product's quantize_int8 turns into int8 MatMulInteger."""
    graph = onnx.load_from_string(quantize_int8(fp32)).graph
    return [n.name.removesuffix("_quant") for n in graph.node if n.op_type == "MatMulInteger"]


def quantize_only(fp32: bytes, names: list[str]) -> bytes:
    """quantize_int8's settings (per-channel int8 weights, MatMul / Gemm), restricted to `names`."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"], nodes_to_quantize=names)
        return dst.read_bytes()


def by_node(model, data, fp32, labels, users, base, size: int, seed: int, user_dense) -> list[dict]:
    """Each quantized product alone, replayed at request size `size`."""
    graph = onnx_bytes(model)
    runner = OnnxScoringModel(model, "onnx")  # its feeds; the session is swapped per node
    out = []
    for name in quantized_nodes(graph):
        runner.session = ort.InferenceSession(quantize_only(graph, [name]), session_options(1),
                                              providers=["CPUExecutionProvider"])
        s = replay_scores(runner.scores, data, request_size=size, seed=seed, user_dense=user_dense)
        r = {"request_size": size, **compare(f"int8 {name} only", s, fp32, labels, users, base)}
        out.append(r)
        print(f"  B={size:<4} int8 of {name:<28} only: AUC {r['auc_change']:+.5f}  max |diff| "
              f"{r['max_abs_diff']:.1e}  p99 {r['p99_abs_diff']:.1e}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--demo-dir", default=None, help="a finished `moon-features demo --workdir` folder")
    p.add_argument("--repo", default="feature_repo", help="that demo's Feast repo (with --demo-dir)")
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--request-sizes", default="1,200")
    p.add_argument("--by-node", action="store_true", help="also quantize each product alone")
    p.add_argument("--out", default="runs/int8_quality")
    args = p.parse_args()
    started, load_before = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), os.getloadavg()
    shop, repo, model_dir = demo_model(args)
    torch.set_num_threads(1)  # one request per worker, as served (ORT sessions use 1 thread too)

    art, trained = load_model(model_dir)
    rows = time_split(entity_rows(coded_dataset(load_dataset(shop))[0]))[2]  # `train`'s test split
    data = training_data(open_store(repo), trained, rows, use_moon=True)
    labels, users = data.labels, data.column("user_id")
    fp32 = Trainer(TrainerConfig(progress=False)).predict(art.model, data).astype(np.float64)
    base = auc(labels, fp32, users)
    reported = json.loads((model_dir / "config.json").read_text())["metrics"]["test"].get("auc")
    print(f"{model_dir}: {len(rows):,} test rows, {int(labels.sum()):,} positive; fp32 test AUC {base['auc']:.4f} "
          f"(train reported {reported:.4f}), GAUC {base['gauc']:.4f}", flush=True)

    backends = {"torch": torch_scores(art.model), "onnx": OnnxScoringModel(art.model, "onnx").scores,
                "onnx-int8": OnnxScoringModel(art.model, "onnx-int8").scores}
    results, sizes = [], [int(s) for s in args.request_sizes.split(",")]
    for size in sizes:
        for name, score in backends.items():
            t0 = time.perf_counter()
            s = replay_scores(score, data, request_size=size, seed=args.seed, user_dense=trained.user_dense)
            r = {"request_size": size, **compare(name, s, fp32, labels, users, base),
                 "seconds": round(time.perf_counter() - t0, 1)}
            results.append(r)
            print(f"  B={size:<4} {name:<10} AUC {r['auc']:.4f} ({r['auc_change']:+.5f})  GAUC {r['gauc']:.4f} "
                  f"({r['gauc_change']:+.5f})  max |diff| {r['max_abs_diff']:.1e}  p99 {r['p99_abs_diff']:.1e}  "
                  f"mean {r['mean_abs_diff']:.1e}", flush=True)

    nodes = by_node(art.model, data, fp32, labels, users, base, max(sizes), args.seed,
                    trained.user_dense) if args.by_node else []
    worst = [r for r in results if r["backend"] == "onnx-int8"]
    ok_scores = all(r["max_abs_diff"] <= SCORE_BOUND for r in worst)
    ok_auc = all(abs(r["auc_change"]) <= AUC_BOUND for r in worst)
    print(f"int8 against #17's bound: |score diff| <= 1e-3: {'met' if ok_scores else 'NOT met'}; "
          f"|test AUC change| <= 0.001: {'met' if ok_auc else 'NOT met'}")
    load_after = os.getloadavg()
    print(f"started {started}; load average (1, 5, 15 min) before {load_before}, after {load_after} "
          f"on {os.cpu_count()} CPUs")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"model_dir": str(model_dir), "test_rows": len(rows), "fp32": base, "train_reported_auc": reported,
               "results": results, "by_node": nodes, "score_bound_met": ok_scores, "auc_bound_met": ok_auc,
               "started": started, "load_before": load_before, "load_after": load_after}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
