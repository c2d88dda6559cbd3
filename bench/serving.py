"""Serving latency: in-process CTRScorer vs the same request through stock Feast, and the HTTP
service under 1 / 8 / 32 concurrent clients from a separate process, all in one run.

Setup (real, temporary): a synthetic-shop repo on the real Redis (own Feast project, keys
deleted at the end) with d=128 MOON embeddings, a DIN+MOON (default DINConfig) trained from
Feast for one epoch, materialized; one user whose online sequence is brought to 50 items with
Feast pushes (the /events path). Request: that user, 200 candidates.

  ours:   CTRScorer.score(user, candidates): one OnlineReader.lookup + batch + model, timed in a
          fresh process (as a serving worker is); a second fresh process times it with glibc's
          default malloc settings instead of serving.allocator's (the baseline of that change)
  stock:  stock Feast over the same Redis data: the repo applied with `stock_redis_config`
          (online_store type redis, Feast's local engine; the classes Feast built are asserted)
          into a registry of its own, then get_online_features(user profile + sequence).to_dict()
          and get_online_features(item profile + embedding, candidates + history).to_dict(),
          the same batch assembly (serving.batch.online_batch) and the same model
  http:   `python -m moon_features.serving.cli serve` (uvicorn, 1 worker, torch threads 1) driven
          by `python bench/serving.py drive` in another process (keep-alive connections, one
          thread per client; bounded by --requests and --seconds per level)

  paths: each of --backends is timed in its own fresh process and served by its own server:
          torch, onnx, onnx-int8 (CTRScorer's model runtime, on the plain artifact), projected and
          projected-onnx (torch / onnxruntime on the projected item view, serving/projected.py: the
          artifact after `moon-features export --projected-items`); the bench prints the server's CPU per
          request for each, and each one's max |score - torch| on the request

    python bench/serving.py --redis 127.0.0.1:6379 --reps 300 --requests 2000 --seconds 20 [--din tiny] [--workers 2]
        [--backends torch,projected,projected-onnx,onnx,onnx-int8] [--levels 1,8,32]
"""
from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from moon_features.store.configs import STOCK_ENGINE_CLASS, STOCK_STORE_CLASS, stock_redis_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/fixtures: shared with the tests
from materialize import assert_classes  # noqa: E402  (bench/ is this script's folder)

N_CANDIDATES, HISTORY, DIM = 200, 50, 128
PROJECTED_PATHS = {"projected": "torch", "projected-onnx": "onnx"}  # path -> the scorer's backend


def pct(samples) -> dict:
    ms = np.asarray(samples, dtype=np.float64) * 1e3
    return {"n": int(len(ms)), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}


# --- load driver (runs in its own process) --------------------------------------------------
def drive(url: str, body: bytes, concurrency: int, max_requests: int, max_seconds: float) -> dict:
    host, port = url.replace("http://", "").rstrip("/").split(":")
    lock = threading.Lock()
    state = {"sent": 0}
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        mine, bad = [], []
        while time.monotonic() < deadline:
            with lock:
                if state["sent"] >= max_requests:
                    break
                state["sent"] += 1
            t = time.perf_counter()
            try:
                conn.request("POST", "/score", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                dt = time.perf_counter() - t
                if resp.status != 200 or len(json.loads(data)["scores"]) != N_CANDIDATES:
                    bad.append(f"HTTP {resp.status}: {data[:200]!r}")
                else:
                    mine.append(dt)
            except Exception as e:  # noqa: BLE001 - every failure is counted, none hidden
                bad.append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    start, cpu_start = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"concurrency": concurrency, "ok": len(latencies), "errors": len(errors), "error_samples": errors[:3],
            "seconds": wall, "throughput_rps": len(latencies) / wall, "client_cpu_seconds": cpu,
            **pct(latencies or [0.0])}


# --- where the machine's time goes ------------------------------------------------------------
def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid] + child_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def child_pids(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [q for c in children for q in [int(c)] + child_pids(int(c))]


def redis_cpu(redis_client) -> float:
    info = redis_client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def machine_time(level: dict, server_cpu: float, redis_seconds: float) -> dict:
    """CPU ms per answered request: server (all workers), Redis, the client process; and what
    that implies on this machine's cores (Little's law for a closed loop of C clients: mean
    latency >= C x machine time / cores once the cores are saturated)."""
    n = max(level["ok"], 1)
    per = {"server_ms": 1e3 * server_cpu / n, "redis_ms": 1e3 * redis_seconds / n,
           "client_ms": 1e3 * level["client_cpu_seconds"] / n}
    per["total_ms"] = sum(per.values())
    cores = os.cpu_count() or 1
    per["max_rps_on_cores"] = 1e3 * cores / per["total_ms"]
    per["min_mean_latency_ms"] = level["concurrency"] * per["total_ms"] / cores
    return per


# --- stock Feast baseline --------------------------------------------------------------------
def stock_lookup(store, spec, user_id: int, candidates: np.ndarray):
    """The same OnlineLookup, read with two stock get_online_features(...).to_dict() calls."""
    from moon_features.spec import ITEM_PROFILE_VIEW, SEQUENCE_VIEW, USER_PROFILE_VIEW
    from moon_features.store.online_reader import ItemBatch, OnlineLookup, UserRow

    user_refs = [f"{USER_PROFILE_VIEW}:{n}" for n in [f.name for f in spec.user_categorical] + list(spec.user_dense)]
    user_refs += [f"{SEQUENCE_VIEW}:hist_item_ids", f"{SEQUENCE_VIEW}:hist_len"]
    u = store.get_online_features(features=user_refs, entity_rows=[{"user_id": user_id}]).to_dict()
    hist = np.asarray(u["hist_item_ids"][0] or [], dtype=np.int64)
    profile = {f.name: (u[f.name][0] or 0) for f in spec.user_categorical}
    profile.update({n: (u[n][0] or 0.0) for n in spec.user_dense})
    stored = u["hist_len"][0] is not None
    user = UserRow(profile, hist, len(hist), found=stored, sequence_found=stored)
    item_refs = [f"{ITEM_PROFILE_VIEW}:{f.name}" for f in spec.item_categorical]
    item_refs += [f"{ITEM_PROFILE_VIEW}:{n}" for n in spec.item_dense] + [f"{spec.embedding.view_name}:embedding"]
    ids = np.concatenate([candidates, hist])
    rows = store.get_online_features(features=item_refs, entity_rows=[{"item_id": int(i)} for i in ids]).to_dict()
    emb = np.zeros((len(ids), spec.embedding.dim), dtype=np.float32)
    found = np.array([v is not None for v in rows["embedding"]])
    for i in np.flatnonzero(found):
        emb[i] = rows["embedding"][i]
    prof = {f.name: np.array([v or 0 for v in rows[f.name]], np.int64) for f in spec.item_categorical}
    prof.update({n: np.array([v or 0.0 for v in rows[n]], np.float32) for n in spec.item_dense})
    pfound = np.array([v is not None for v in rows[spec.item_categorical[0].name]])

    def part(a, b):
        return ItemBatch(ids[a:b], emb[a:b], found[a:b], {k: v[a:b] for k, v in prof.items()}, pfound[a:b])

    n = len(candidates)
    return OnlineLookup(user, part(0, n), part(n, len(ids)))


def stock_score(scorer, store, user_id: int, candidates: np.ndarray) -> np.ndarray:
    import torch

    from moon_features.serving.batch import online_batch

    lookup = stock_lookup(store, scorer.spec, user_id, candidates)
    batch = online_batch(lookup, scorer.spec, scorer.inputs, user_id)
    with torch.inference_mode():
        return torch.sigmoid(scorer.model(batch)).numpy()


def timed(fn, reps: int, warmup: int = 10) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds of this thread) per call. On a loaded machine the wall time
    includes waiting for a core; the thread's CPU time is what the call itself costs."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    gc.disable()
    try:
        for _ in range(reps):
            t, c = time.perf_counter(), time.thread_time()
            fn()
            cpu.append(time.thread_time() - c)
            wall.append(time.perf_counter() - t)
    finally:
        gc.enable()
    return wall, cpu


# --- in-process timing (runs in its own, fresh process) ------------------------------------
def stage_timings(scorer, user: int, candidates: np.ndarray, reps: int) -> dict:
    stages = {"lookup": [], "batch": [], "model": []}
    for _ in range(reps):
        d = scorer.score_detailed(user, candidates)
        for k in stages:
            stages[k].append(d.timings[k])
    return {k: pct(v) for k, v in stages.items()}


def in_process(request: dict, malloc: str, reps: int, stock_reps: int, torch_threads: int,
               backend: str = "torch") -> dict:
    """CTRScorer (and, with malloc="retain" on torch, stock Feast) on one request, timed in this process."""
    from moon_features.store.repo import open_store

    store = open_store(request["repo"])
    scorer = path_scorer(request, store, backend, torch_threads=torch_threads, retain_memory=malloc == "retain")
    user, candidates = request["user"], np.asarray(request["candidates"], dtype=np.int64)
    detail = scorer.score_detailed(user, candidates)
    assert detail.history_length == HISTORY and detail.item_found.all() and len(detail.scores) == N_CANDIDATES
    if malloc == "default" or backend != "torch":
        wall, cpu = timed(lambda: scorer.score(user, candidates), reps)
        return {"ctr_scorer": pct(wall), "ctr_scorer_cpu": pct(cpu), "scores": detail.scores.tolist(),
                "stages": stage_timings(scorer, user, candidates, min(reps, 200))}
    stock_store = open_store(request["repo"], request["stock_config"])
    assert_classes(stock_store, STOCK_STORE_CLASS, STOCK_ENGINE_CLASS)  # the baseline is stock Feast
    np.testing.assert_allclose(stock_score(scorer, stock_store, user, candidates), detail.scores, atol=1e-6)
    ours, ours_cpu = timed(lambda: scorer.score(user, candidates), reps)
    stages = stage_timings(scorer, user, candidates, min(reps, 200))
    stock, stock_cpu = timed(lambda: stock_score(scorer, stock_store, user, candidates), stock_reps, warmup=3)
    # Again after stock, so that both see the machine's load of this minute.
    ours_again, ours_again_cpu = timed(lambda: scorer.score(user, candidates), reps)
    r = {"ctr_scorer": pct(ours + ours_again), "stock_feast": pct(stock), "scores": detail.scores.tolist(),
         "ctr_scorer_cpu": pct(ours_cpu + ours_again_cpu), "stock_feast_cpu": pct(stock_cpu), "stages": stages}
    r["speedup_p50"] = r["stock_feast"]["p50_ms"] / r["ctr_scorer"]["p50_ms"]
    r["speedup_p99"] = r["stock_feast"]["p99_ms"] / r["ctr_scorer"]["p99_ms"]
    r["speedup_cpu_p50"] = r["stock_feast_cpu"]["p50_ms"] / r["ctr_scorer_cpu"]["p50_ms"]
    scorer.close()
    return r


def alternating(request: dict, backends: list[str], rounds: int, reps: int) -> dict:
    """CPU per request (and per model call) of every backend in one process, in alternating rounds:
    on a shared, loaded machine the backends then see the same load, so their ratio means more
    than the separate children's absolute figures."""
    from moon_features.store.repo import open_store

    store = open_store(request["repo"])
    scorers = {b: path_scorer(request, store, b, torch_threads=1) for b in backends}
    user, candidates = request["user"], np.asarray(request["candidates"], dtype=np.int64)
    models = {b: model_call(scorer, user, candidates) for b, scorer in scorers.items()}
    per: dict = {b: {"request": [], "model": []} for b in backends}
    for _ in range(rounds):
        for b, scorer in scorers.items():
            per[b]["request"].append(np.median(timed(lambda: scorer.score(user, candidates), reps, 5)[1]))
            per[b]["model"].append(np.median(timed(models[b], reps, 5)[1]))
    return {b: {k: 1e3 * float(np.median(v)) for k, v in d.items()} for b, d in per.items()}


def path_scorer(request: dict, store, path: str, **kwargs):
    """CTRScorer of one path: projected = torch on the pinned artifact, the others on the plain one."""
    from moon_features.serving.scorer import CTRScorer

    if path in PROJECTED_PATHS:
        return CTRScorer(store, request["model_dir"], backend=PROJECTED_PATHS[path], projected_items=True, **kwargs)
    return CTRScorer(store, request["model_plain"], backend=path, projected_items=False, **kwargs)


def model_call(scorer, user: int, candidates: np.ndarray):
    """The model call alone, on one request's prepared inputs."""
    from moon_features.serving.batch import online_batch

    if scorer.projected is not None:
        inputs = scorer.projected.prepare(user, candidates, {})["inputs"]
        return lambda: scorer.projected.forward(inputs)
    batch = online_batch(scorer.lookup(user, candidates), scorer.spec, scorer.inputs, user)
    return lambda: scorer.run_model(batch)


def in_child(args, request: Path, malloc: str, backend: str = "torch") -> dict:
    out = subprocess.run([sys.executable, __file__, "inproc", "--request", str(request), "--malloc", malloc,
                          "--reps", str(args.reps), "--stock-reps", str(args.stock_reps),
                          "--torch-threads", str(args.torch_threads), "--backend", backend],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"in-process timing ({malloc}) failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the run ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not become healthy")


def run(args) -> dict:
    import pandas as pd

    from fixtures.serving_setup import build_serving_setup, users_with_history
    from fixtures.store_repo import delete_project_keys
    from moon_features.serving.projected_build import build_projected_items
    from moon_features.store.push import append_positive_event
    from moon_features.store.repo import apply_repo, open_store

    tmp = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    from fixtures.serving_setup import TINY_DIN

    setup = build_serving_setup(tmp, online="redis", redis_connection=args.redis, n_items=args.items, dim=DIM,
                                max_len=HISTORY, model_overrides=TINY_DIN if args.din == "tiny" else None)
    results: dict = {"setup": {"candidates": N_CANDIDATES, "history": HISTORY, "dim": DIM, "model": "DIN+MOON",
                               "backend": "redis", "din": args.din,
                               "torch_threads": args.torch_threads, "loadavg_before": os.getloadavg()}}
    try:
        store = open_store(setup.repo)
        user = int(users_with_history(setup.repo, 1)[0])
        t0 = pd.Timestamp.now(tz="UTC")
        rng = np.random.default_rng(0)
        for k, item in enumerate(rng.integers(1, args.items + 1, HISTORY)):  # the /events path, 50 times
            append_positive_event(store, setup.spec, user, int(item), t0 + pd.Timedelta(milliseconds=k))
        candidates = rng.choice(np.arange(1, args.items + 1), N_CANDIDATES, replace=False).astype(np.int64)

        # stock Feast: the same Redis data through a stock configuration with a registry of its own
        stock_config = setup.repo / "feature_store.stock.yaml"
        stock_config.write_text(stock_redis_config(setup.project, args.redis))
        assert_classes(apply_repo(setup.repo, stock_config), STOCK_STORE_CLASS, STOCK_ENGINE_CLASS)
        # the plain artifact (never pinned) and, in model_dir, the one pinning its projected item view
        model_plain = tmp / "model_plain"
        shutil.copytree(setup.model_dir, model_plain)
        if set(PROJECTED_PATHS) & set(args.backends):
            t = time.perf_counter()
            pin = build_projected_items(store, setup.model_dir)
            results["setup"]["projected_build_s"] = time.perf_counter() - t
            results["setup"]["projected_view"] = pin
        request = tmp / "request.json"
        request.write_text(json.dumps({"repo": str(setup.repo), "model_dir": str(setup.model_dir), "user": user,
                                       "model_plain": str(model_plain), "stock_config": str(stock_config),
                                       "candidates": candidates.tolist()}))
        # In fresh processes, as a serving worker is: this one has just trained a model, which
        # leaves the allocator (and caches) in a state no server starts in. The first child keeps
        # glibc's default malloc settings, the second retains freed memory (serving.allocator).
        default = in_child(args, request, "default")
        results["in_process"] = r = in_child(args, request, "retain")
        r["default_malloc"] = default
        r["retain_speedup_p50"] = default["ctr_scorer"]["p50_ms"] / r["ctr_scorer"]["p50_ms"]
        r["retain_speedup_model_p50"] = default["stages"]["model"]["p50_ms"] / r["stages"]["model"]["p50_ms"]
        results["backends"] = backends = {"torch": r}
        for backend in [b for b in args.backends if b != "torch"]:
            b = backends[backend] = in_child(args, request, "retain", backend)
            b["max_abs_diff_vs_torch"] = float(np.abs(np.subtract(b["scores"], r["scores"])).max())

        out = subprocess.run([sys.executable, __file__, "alternate", "--request", str(request), "--backends",
                              ",".join(args.backends)], capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise RuntimeError(f"alternating timing failed: {out.stderr[-2000:]}")
        results["alternating_cpu"] = json.loads(out.stdout.strip().splitlines()[-1])
        body_file = tmp / "body.json"
        body_file.write_bytes(json.dumps({"user_id": user, "candidate_item_ids": candidates.tolist()}).encode())
        results["http"] = []
        for backend in args.backends:
            results["http"] += http_levels(args, setup, body_file, backend)
        results["setup"]["loadavg_after"] = os.getloadavg()
        results["setup"]["workers"] = args.workers
    finally:
        delete_project_keys(setup.project, args.redis)
    return results


def http_levels(args, setup, body_file: Path, backend: str) -> list[dict]:
    """One server on `backend`, driven at each concurrency level; CPU per request from /proc and Redis."""
    import redis

    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    model = setup.model_dir if backend in PROJECTED_PATHS else setup.model_dir.parent / "model_plain"
    server = subprocess.Popen([sys.executable, "-m", "moon_features.serving.cli", "serve", "--repo", str(setup.repo),
                               "--model-dir", str(model), "--port", str(port), "--workers", str(args.workers),
                               "--backend", PROJECTED_PATHS.get(backend, backend)], env=env)
    levels = []
    try:
        wait_healthy(port, server)
        redis_client = redis.Redis.from_url(f"redis://{args.redis}")
        for c in args.levels:
            server_cpu, redis_before = process_tree_cpu(server.pid), redis_cpu(redis_client)
            out = subprocess.run([sys.executable, __file__, "drive", "--url", f"http://127.0.0.1:{port}",
                                  "--body", str(body_file), "--concurrency", str(c), "--requests",
                                  str(args.requests), "--seconds", str(args.seconds)],
                                 capture_output=True, text=True, timeout=args.seconds + 120)
            if out.returncode != 0:
                raise RuntimeError(f"driver failed: {out.stderr[-2000:]}")
            level = json.loads(out.stdout.strip().splitlines()[-1])
            level["backend"] = backend
            level["machine_time"] = machine_time(level, process_tree_cpu(server.pid) - server_cpu,
                                                 redis_cpu(redis_client) - redis_before)
            levels.append(level)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return levels


def report(r: dict) -> str:
    ip = r["in_process"]
    dm = ip["default_malloc"]
    lines = [f"in-process, 1 user x {N_CANDIDATES} candidates, history {HISTORY}, d={DIM}, DIN+MOON "
             f"({r['setup']['din']} DINConfig), Redis, torch threads {r['setup'].get('torch_threads', 1)}:",
             f"  CTRScorer.score          p50 {ip['ctr_scorer']['p50_ms']:.2f} ms  p99 {ip['ctr_scorer']['p99_ms']:.2f} ms"
             f"  (n={ip['ctr_scorer']['n']}; p50 of lookup {ip['stages']['lookup']['p50_ms']:.2f} ms, "
             f"batch {ip['stages']['batch']['p50_ms']:.2f} ms, model {ip['stages']['model']['p50_ms']:.2f} ms)",
             f"  stock get_online_features p50 {ip['stock_feast']['p50_ms']:.2f} ms  p99 {ip['stock_feast']['p99_ms']:.2f} ms"
             f"  (n={ip['stock_feast']['n']})",
             f"  speed-up: {ip['speedup_p50']:.1f}x at p50, {ip['speedup_p99']:.1f}x at p99",
             f"  CPU time per request (this thread): CTRScorer p50 {ip['ctr_scorer_cpu']['p50_ms']:.2f} ms "
             f"p99 {ip['ctr_scorer_cpu']['p99_ms']:.2f} ms; stock p50 {ip['stock_feast_cpu']['p50_ms']:.2f} ms "
             f"p99 {ip['stock_feast_cpu']['p99_ms']:.2f} ms ({ip['speedup_cpu_p50']:.1f}x)",
             f"  same, glibc's default malloc (fresh process): CTRScorer p50 {dm['ctr_scorer']['p50_ms']:.2f} ms "
             f"p99 {dm['ctr_scorer']['p99_ms']:.2f} ms, model p50 {dm['stages']['model']['p50_ms']:.2f} ms; "
             f"retaining freed memory: {ip['retain_speedup_p50']:.2f}x at p50, model {ip['retain_speedup_model_p50']:.2f}x",
             "model backends, same request, fresh process each (CPU = this thread's CPU time per request):"]
    stock_cpu = ip["stock_feast_cpu"]["p50_ms"]
    for name, b in r["backends"].items():
        diff = "" if name == "torch" else f"; max |score - torch| {b['max_abs_diff_vs_torch']:.1e}"
        lines.append(f"  {name:<10} p50 {b['ctr_scorer']['p50_ms']:.2f} ms  p99 {b['ctr_scorer']['p99_ms']:.2f} ms  "
                     f"CPU p50 {b['ctr_scorer_cpu']['p50_ms']:.2f} ms  (stages p50: lookup "
                     f"{b['stages']['lookup']['p50_ms']:.2f}, batch {b['stages']['batch']['p50_ms']:.2f}, model "
                     f"{b['stages']['model']['p50_ms']:.2f} ms); vs stock: {ip['stock_feast']['p50_ms'] / b['ctr_scorer']['p50_ms']:.1f}x "
                     f"p50, {ip['stock_feast']['p99_ms'] / b['ctr_scorer']['p99_ms']:.1f}x p99, "
                     f"{stock_cpu / b['ctr_scorer_cpu']['p50_ms']:.1f}x CPU{diff}")
    alt = r["alternating_cpu"]
    base = alt.get("torch") or next(iter(alt.values()))
    lines.append("CPU per request, backends alternating in one process (median of rounds; model = the model call alone):")
    for name, a in alt.items():
        lines.append(f"  {name:<10} request {a['request']:.2f} ms ({base['request'] / a['request']:.2f}x torch), "
                     f"model {a['model']:.2f} ms ({base['model'] / a['model']:.2f}x torch)")
    lines.append(f"HTTP POST /score ({r['setup']['workers']} worker(s)), separate client process:")
    for h in r["http"]:
        lines.append(f"  {h.get('backend', 'torch'):<10} {h['concurrency']:>2} clients: {h['throughput_rps']:7.1f} req/s  "
                     f"p50 {h['p50_ms']:6.2f} ms  "
                     f"p99 {h['p99_ms']:6.2f} ms  ok {h['ok']}  errors {h['errors']}  ({h['seconds']:.1f} s)")
        m = h["machine_time"]
        lines.append(f"      CPU per request: server {m['server_ms']:.2f} + Redis {m['redis_ms']:.2f} + client "
                     f"{m['client_ms']:.2f} = {m['total_ms']:.2f} ms -> at most {m['max_rps_on_cores']:.0f} req/s on "
                     f"{os.cpu_count()} cores; mean latency >= {m['min_mean_latency_ms']:.1f} ms at this concurrency")
    la, lb = r["setup"]["loadavg_before"], r["setup"]["loadavg_after"]
    lines.append(f"load average before {la[0]:.2f}, after {lb[0]:.2f} on {os.cpu_count()} CPUs")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode")
    d = sub.add_parser("drive", help="(internal) the load-generating client process")
    d.add_argument("--url", required=True)
    d.add_argument("--body", required=True)
    d.add_argument("--concurrency", type=int, required=True)
    d.add_argument("--requests", type=int, default=2000)
    d.add_argument("--seconds", type=float, default=20)
    i = sub.add_parser("inproc", help="(internal) the in-process timing, in a fresh process")
    i.add_argument("--request", required=True)
    i.add_argument("--malloc", choices=["default", "retain"], required=True)
    i.add_argument("--reps", type=int, default=300)
    i.add_argument("--stock-reps", type=int, default=200)
    i.add_argument("--torch-threads", type=int, default=1)
    i.add_argument("--backend", default="torch")
    a = sub.add_parser("alternate", help="(internal) every backend's CPU per request in one process, alternating")
    a.add_argument("--request", required=True)
    a.add_argument("--backends", type=lambda t: t.split(","), required=True)
    a.add_argument("--rounds", type=int, default=7)
    a.add_argument("--reps", type=int, default=40)
    p.add_argument("--redis", default="127.0.0.1:6379")
    p.add_argument("--items", type=int, default=400)
    p.add_argument("--reps", type=int, default=300, help="in-process CTRScorer requests (twice: before and after stock)")
    p.add_argument("--stock-reps", type=int, default=200)
    p.add_argument("--requests", type=int, default=2000, help="max HTTP requests per concurrency level")
    p.add_argument("--seconds", type=float, default=20, help="max seconds per concurrency level")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--torch-threads", type=int, default=1,
                   help="intra-op threads of the in-process CTRScorer (the HTTP workers keep 1 each)")
    p.add_argument("--din", choices=["default", "tiny"], default="default",
                   help="DINConfig defaults (the project's DIN+MOON) or the tests' tiny one (embed 8, attention (16,))")
    p.add_argument("--backends", type=lambda t: t.split(","),
                   default=["torch", "projected", "projected-onnx", "onnx", "onnx-int8"],
                   help="paths to time, comma-separated (in process and over HTTP): torch, projected, "
                        "projected-onnx, onnx, onnx-int8")
    p.add_argument("--levels", type=lambda t: [int(x) for x in t.split(",")], default=[1, 8, 32],
                   help="HTTP concurrency levels, comma-separated")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    if args.mode == "inproc":
        request = json.loads(Path(args.request).read_text())
        print(json.dumps(in_process(request, args.malloc, args.reps, args.stock_reps, args.torch_threads,
                                    args.backend)))
        return
    if args.mode == "alternate":
        print(json.dumps(alternating(json.loads(Path(args.request).read_text()), args.backends, args.rounds,
                                     args.reps)))
        return
    if args.mode == "drive":
        print(json.dumps(drive(args.url, Path(args.body).read_bytes(), args.concurrency, args.requests, args.seconds)))
        return
    results = run(args)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # skip DuckDB's noisy interpreter finalisation
