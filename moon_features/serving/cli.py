"""`moon-features serve` and `export`: the parser (handlers: serving/commands.py; check-consistency
spans training and serving: moon_features.cli has it).

The main CLI calls `add_serving_commands(subparsers)`; `python -m moon_features.serving.cli`
runs the same commands on their own.
"""
from __future__ import annotations

import argparse

from ..command import exit_now, handler, run


def add_serving_commands(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP scoring service (POST /score, /events; GET /health, /metrics)")
    p.add_argument("--repo", default=None, help="the Feast repo (spec.json, feature_store.yaml)")
    p.add_argument("--model-dir", default=None, help="model artifact trained from that repo")
    p.add_argument("--config", default=None, help="another feature_store.yaml, e.g. the Redis one")
    p.add_argument("--settings", default=None, help="serving settings file (YAML/JSON); also $MOON_SERVING_CONFIG")
    p.add_argument("--host", default=None, help="default 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default 8000")
    p.add_argument("--max-candidates", type=int, default=None, help="default 1000; more -> HTTP 413")
    p.add_argument("--workers", type=int, default=None, help="uvicorn worker processes, default 1")
    p.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None,
                   help="the model's runtime, default torch; onnx / onnx-int8 run the artifact's graph in "
                        "onnxruntime (onnx extra)")
    p.set_defaults(func=handler("moon_features.serving.commands:serve"))

    p = subparsers.add_parser("export", help="write a model artifact's serving graph as ONNX (onnxruntime / Triton), "
                                             "or (--projected-items) build its projected item view")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--model-dir", required=True, help="model artifact (moon-features train)")
    p.add_argument("--out", default=None, help="the .onnx file to write (ONNX export)")
    p.add_argument("--projected-items", action="store_true",
                   help="instead: compute DIN's per-item work from the online store, register and materialize it as "
                        "a new item_projected_v<N> view with a feature service, and pin it in the artifact")
    p.add_argument("--repo", default=None, help="with --projected-items: the Feast repo")
    p.add_argument("--config", default=None, help="with --projected-items: another feature_store.yaml, e.g. the Redis one")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="int8: onnxruntime dynamic quantization of the MatMul / Gemm weights")
    p.set_defaults(func=handler("moon_features.serving.commands:export"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="moon-features", description="scoring service commands")
    add_serving_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    exit_now(main())  # as the main entry point: skip DuckDB's noisy interpreter finalisation
