"""Reliability figures of the scoring service (issue #16), each beside its baseline from the same run.

    nice -n 10 .venv/bin/python bench/reliability.py [--body-mib 100] [--no-slow-baselines]

1. A 100 MiB body: seconds to the 413 (Content-Length, and chunked without one) and /health
   latency while it uploads; baseline: the same upload with the limit lifted (max_body_bytes =
   2x the body), i.e. the service reading and parsing it all as before.
2. A hung Redis (a loopback socket that accepts and never answers): seconds to the 503 of
   /score, /health and /events; baseline: the old timeouts (store_timeout_s = 10 s).
3. 50 events from 8 concurrent clients for one user, on Redis and SQLite: events lost;
   baseline: the old read-then-push append without the script or lock.

Everything real: a private redis-server, a Feast repo with a tiny DIN+MOON, uvicorn on loopback.
"""
from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd

from moon_features.serving.app import create_app
from moon_features.serving.live import HungRedis, LiveServer, PrivateRedis
from moon_features.serving.settings import ServingSettings
from moon_features.store.definitions import repo_objects
from moon_features.store.push import current_sequence
from moon_features.store.repo import materialize_all, open_store, sqlite_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/fixtures: shared with the tests
from fixtures.serving_setup import build_serving_setup  # noqa: E402


def upload(port: int, mib: int, chunked: bool) -> tuple[float, str]:
    """Send a POST /score of `mib` MiB; seconds until the status line arrives, and the status."""
    sock = socket.create_connection(("127.0.0.1", port))
    size = mib << 20
    head = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    sock.sendall(f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}\r\n\r\n".encode())
    status: dict = {}
    start = time.perf_counter()

    def read_status():
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        status["t"], status["line"] = time.perf_counter() - start, data.split(b"\r\n")[0].decode()
        try:  # stop the upload: the answer is in (a server that stops reading would block sendall)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    reader = threading.Thread(target=read_status)
    reader.start()
    prefix = b'{"user_id": 1, "candidate_item_ids": [1], "pad": "'
    block = prefix + b"x" * ((1 << 20) - len(prefix))  # every piece exactly 1 MiB: the body is `size` bytes
    try:
        for i in range(mib):
            piece = block if i == 0 else b"x" * (1 << 20)
            if i == mib - 1:
                piece = piece[:-2] + b'"}'
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if "t" in status:
                break
        if chunked and "t" not in status:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection after its 413: what we want
    reader.join(timeout=120)
    sock.close()
    return status.get("t", float("nan")), status.get("line", "no answer")


def health_during(url: str, work) -> tuple[list[float], object]:
    """Poll /health every 20 ms while work() runs; (latencies in ms, work's result)."""
    lat, done = [], threading.Event()

    def poll():
        with httpx.Client(base_url=url, timeout=30) as c:
            while not done.is_set():
                t = time.perf_counter()
                c.get("/health")
                lat.append((time.perf_counter() - t) * 1000)
                time.sleep(0.02)

    th = threading.Thread(target=poll)
    th.start()
    while not lat:  # the poller is warm before the upload starts
        time.sleep(0.005)
    first = len(lat)
    try:
        result = work()
        while len(lat) < first + 2:  # and at least two polls overlap or follow the answer
            time.sleep(0.005)
    finally:
        done.set()
        th.join()
    return lat[first:], result


def body_figures(s, mib: int) -> None:
    print(f"\n== {mib} MiB body to POST /score ==")
    for label, limit in (("limit 1 MiB (default)", 1 << 20), ("baseline: no effective limit", (2 * mib) << 20)):
        app = create_app(ServingSettings(repo=str(s.repo), model_dir=str(s.model_dir), max_body_bytes=limit))
        with LiveServer(app) as url:
            port = int(url.rsplit(":", 1)[1])
            for chunked in (False, True):
                lat, (secs, line) = health_during(url, lambda: upload(port, mib, chunked))
                kind = "chunked" if chunked else "Content-Length"
                print(f"{label:30s} {kind:15s} answer {line[9:12] or '?'} after {secs:7.3f} s; /health during "
                      f"upload: max {max(lat):7.1f} ms, median {statistics.median(lat):5.1f} ms over {len(lat)} polls")


def hung_figures(s, redis_port: int, slow_baseline: bool) -> None:
    print("\n== hung Redis (accepts, never answers) ==")
    hung = HungRedis()
    text = (s.repo / "feature_store.yaml").read_text().replace(f"127.0.0.1:{redis_port}", f"127.0.0.1:{hung.port}")
    (s.repo / "hung.yaml").write_text(text)
    runs = [("store_timeout_s 0.5 (default)", 0.5)] + ([("baseline: old 10 s timeout", 10.0)] if slow_baseline else [])
    try:
        for label, timeout in runs:
            app = create_app(ServingSettings(repo=str(s.repo), model_dir=str(s.model_dir), store_timeout_s=timeout,
                                             feature_store_yaml=str(s.repo / "hung.yaml")))
            with LiveServer(app) as url, httpx.Client(base_url=url, timeout=120) as c:
                for method, path, body in (("POST", "/score", {"user_id": 1, "candidate_item_ids": [1, 2]}),
                                           ("GET", "/health", None),
                                           ("POST", "/events", {"user_id": 1, "item_id": 2, "event_type": "click"})):
                    t = time.perf_counter()
                    r = c.request(method, path, json=body)
                    print(f"{label:30s} {path:8s} -> {r.status_code} after {time.perf_counter() - t:6.2f} s")
    finally:
        hung.close()


def events_figures(s) -> None:
    print("\n== 50 events from 8 concurrent clients for one user ==")
    for backend in ("redis", "sqlite"):
        config = str(s.repo / "sqlite.yaml") if backend == "sqlite" else None
        app = create_app(ServingSettings(repo=str(s.repo), model_dir=str(s.model_dir), feature_store_yaml=config))
        store = app.state.scorer.store
        user = 660_000 + (backend == "sqlite")
        with LiveServer(app) as url:
            codes = send_events(lambda c, i: c.post("/events", json={"user_id": user, "item_id": i,
                                                                     "event_type": "click"}).status_code, url)
        stored = len(current_sequence(store, user)[0])
        base_user = user + 10
        old = old_append(app, base_user)
        base_codes = send_events(lambda c, i: old(i), url=None)
        base = len(current_sequence(store, base_user)[0])
        print(f"{backend:6s}: {codes.count(200)} x 200, {stored} stored, {50 - stored} lost;"
              f"  baseline (read, then push; no script / lock): {base_codes.count(200)} ok, {base} stored, "
              f"{50 - base} lost")


def old_append(app, user: int):
    """The append before #16: Feast read, append, Feast push; two at once can lose one."""
    from feast.data_source import PushMode

    from moon_features.spec import SEQUENCE_PUSH_SOURCE

    store = app.state.scorer.store

    def append(item: int) -> int:
        try:
            history, _ = current_sequence(store, user)
            history = history + [item]
            store.push(SEQUENCE_PUSH_SOURCE, pd.DataFrame({
                "user_id": pd.Series([user], dtype="int64"), "event_timestamp": pd.Series([pd.Timestamp.now(tz="UTC")]),
                "hist_item_ids": [history], "hist_len": pd.Series([len(history)], dtype="int64")}), to=PushMode.ONLINE)
            return 200
        except Exception:  # noqa: BLE001 - e.g. SQLite "cannot commit": the HTTP app answered 500 here
            return 500
    return append


def send_events(post, url) -> list[int]:
    def client(k: int) -> list[int]:
        if url is None:
            return [post(None, i) for i in range(1 + k, 51, 8)]
        with httpx.Client(base_url=url, timeout=60) as c:
            return [post(c, i) for i in range(1 + k, 51, 8)]

    with ThreadPoolExecutor(8) as pool:
        return [code for part in pool.map(client, range(8)) for code in part]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--body-mib", type=int, default=100)
    ap.add_argument("--no-slow-baselines", action="store_true", help="skip the 10 s-timeout hung-Redis baseline")
    args = ap.parse_args(argv)
    logging.getLogger("moon_features.serving").setLevel(logging.ERROR)  # the 503s below are expected
    redis = PrivateRedis().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            s = build_serving_setup(Path(tmp), online="redis", redis_connection=f"127.0.0.1:{redis.port}", max_len=64)
            (s.repo / "sqlite.yaml").write_text(sqlite_config(s.project))
            sqlite = open_store(s.repo, s.repo / "sqlite.yaml")
            sqlite.apply(list(repo_objects(s.repo).values()))
            materialize_all(sqlite)
            body_figures(s, args.body_mib)
            hung_figures(s, redis.port, not args.no_slow_baselines)
            events_figures(s)
    finally:
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
