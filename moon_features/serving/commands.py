"""Handlers of `moon-features serve` and `export` (the parser: serving/cli.py, which names them
by dotted path so that `moon-features --help` loads none of this)."""
from __future__ import annotations

import os

import uvicorn

from ..store.repo import open_store
from .app import create_app
from .projected_build import build_projected_items
from .settings import ServingSettings


def serve(args) -> None:
    settings = ServingSettings.load(args.settings, repo=args.repo, model_dir=args.model_dir,
                                    feature_store_yaml=args.config, host=args.host, port=args.port,
                                    max_candidates=args.max_candidates, workers=args.workers,
                                    backend=args.backend).require_paths()
    print(f"serving {settings.model_dir} over {settings.repo} at http://{settings.host}:{settings.port} "
          f"({settings.workers} worker(s), {settings.backend} backend; OpenAPI at /docs)", flush=True)
    if settings.workers == 1:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                    access_log=False)
        return
    # Worker processes build their own app from the environment: pass the merged settings there.
    os.environ.update(settings.as_env())
    uvicorn.run("moon_features.serving.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level=settings.log_level, access_log=False)


def export(args) -> None:
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
