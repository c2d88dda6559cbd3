"""A lab run is a folder; every finished point is one JSON file written the moment it finishes.

    <run>/lab.json                    the preset, data and commands of the run
    <run>/points/<kind>/<key>.json    {kind, key, variant, metrics, seconds, cpu_seconds, ...}

Re-running a lab command on the same folder skips every point whose file exists, so an
interrupted lab resumes where it stopped; delete a point's file to recompute it.
Files are written to a temporary name and renamed, so a crash never leaves half a point.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def write_json(path: str | Path, obj) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))
    os.replace(tmp, path)
    return path


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


class LabRun:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # -- run metadata -------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / "lab.json"

    def meta(self) -> dict:
        return read_json(self.meta_path) if self.meta_path.exists() else {}

    def update_meta(self, **kw) -> dict:
        meta = self.meta()
        for k, v in kw.items():
            if k == "commands":
                meta.setdefault("commands", [])
                meta["commands"] += [c for c in v if c not in meta["commands"]]
            else:
                meta[k] = v
        write_json(self.meta_path, meta)
        return meta

    # -- points -------------------------------------------------------------------------------
    def point_path(self, kind: str, key: str) -> Path:
        return self.root / "points" / kind / f"{key}.json"

    def get(self, kind: str, key: str) -> dict | None:
        p = self.point_path(kind, key)
        return read_json(p) if p.exists() else None

    def points(self, kind: str) -> list[dict]:
        folder = self.root / "points" / kind
        return [read_json(p) for p in sorted(folder.glob("*.json"))] if folder.exists() else []

    def run_point(self, kind: str, key: str, compute: Callable[[], dict], summary: Callable[[dict], str],
                  variant: dict | None = None, progress: bool = True) -> dict:
        """The point's record: read from disk when it exists, else computed, timed and saved.
        `compute()` returns {"metrics": {...}, ...extra} (extra may hold a "cost" breakdown in seconds,
        e.g. the encoder training a point stands on); this call's wall and CPU seconds are added."""
        done = self.get(kind, key)
        if done is not None:
            if progress:
                tqdm.write(f"[{kind}] {key}: done earlier, skipped ({summary(done)})")
            return done
        t0, c0 = time.perf_counter(), time.process_time()
        out = compute()
        record = {"kind": kind, "key": key, "variant": variant or {}, **out,
                  "seconds": round(time.perf_counter() - t0, 2),
                  "cpu_seconds": round(time.process_time() - c0, 2),
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(self.point_path(kind, key), record)
        if progress:
            tqdm.write(f"[{kind}] {key}: {summary(record)} ({record['seconds']:.0f} s)")
        return record
