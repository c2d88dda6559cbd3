"""`moon-features serve` and `export` (check-consistency spans training and serving:
moon_features.cli has it).

The main CLI calls `add_serving_commands(subparsers)`; `python -m moon_features.serving.cli`
runs the same commands on their own.
"""
from __future__ import annotations

import argparse
import os

from ..command import exit_now, run
from ..store.repo import open_store
from .projected_build import build_projected_items


def _serve(args) -> None:
    import uvicorn

    from .settings import ServingSettings

    settings = ServingSettings.load(args.settings, repo=args.repo, model_dir=args.model_dir,
                                    feature_store_yaml=args.config, host=args.host, port=args.port,
                                    max_candidates=args.max_candidates, workers=args.workers,
                                    backend=args.backend).require_paths()
    print(f"serving {settings.model_dir} over {settings.repo} at http://{settings.host}:{settings.port} "
          f"({settings.workers} worker(s), {settings.backend} backend; OpenAPI at /docs)", flush=True)
    if settings.workers == 1:
        from .app import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                    access_log=False)
        return
    # Worker processes build their own app from the environment: pass the merged settings there.
    os.environ.update(settings.as_env())
    uvicorn.run("moon_features.serving.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level=settings.log_level, access_log=False)


def _export(args) -> None:
    if args.projected_items:
        _export_projected(args)
        return
    if not args.out:
        raise SystemExit("moon-features export: --out is required for the ONNX export")
    from ctr_models.onnx_export import export_artifact

    fmt = "onnx-int8" if args.quantize == "int8" else args.format
    path, diff, names = export_artifact(args.model_dir, args.out, fmt)
    print(f"exported {args.model_dir} -> {path} ({fmt}, {path.stat().st_size / 1e6:.2f} MB); inputs: "
          f"{', '.join(names)}; outputs: logit, score; plain onnxruntime vs torch on an example: "
          f"max |diff| = {diff:.1e}")


def _export_projected(args) -> None:
    if not args.repo:
        raise SystemExit("moon-features export --projected-items: --repo is required (the Feast repo to materialize into)")
    pin = build_projected_items(open_store(args.repo, args.config), args.model_dir)
    print(f"projected item view {pin['view']} ({pin['items']} items x {pin['width']} floats, weights "
          f"{pin['fingerprint']}) materialized; feature service {pin['feature_service']}; pinned in "
          f"{args.model_dir}/projected_items.json")


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
    p.set_defaults(func=_serve)

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
    p.set_defaults(func=_export)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="moon-features", description="scoring service commands")
    add_serving_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    exit_now(main())  # as the main entry point: skip DuckDB's noisy interpreter finalisation
