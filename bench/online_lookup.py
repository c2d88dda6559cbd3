"""Online lookup latency: moon-features OnlineReader vs stock Feast get_online_features, same run.

Builds a temporary repo on the real Redis (own project name, keys deleted at the end) whose
feature_store.yaml is stock Feast (`stock_redis_config`: online_store type redis, Feast's local
compute engine; the store and engine classes Feast built are asserted), writes it with stock
`feast materialize`, then times, for each embedding dimension d and candidate count n, interleaved:

  stock:  store.get_online_features(embedding + user profile + sequence, one row per candidate
          {user_id, item_id}).to_dict()
  ours:   reader.lookup(user, candidates, profiles=False, history=False): the same values,
          one round trip, float32 [n, d] + found mask + user dict

and, for the serving path, the full lookup (user, candidates' and history items' profiles and
embeddings; stock needs two calls because the history ids come from the first). Every timed
pair is checked to return identical values first. Prints p50 / p99 and the ratio.

    python bench/online_lookup.py --redis 127.0.0.1:6379 --reps 300
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from moon_features.spec import EMBEDDING_FIELD, SEQUENCE_VIEW, USER_PROFILE_VIEW, embedding_view_name
from moon_features.store.configs import CONFIG_FILE, STOCK_ENGINE_CLASS, STOCK_STORE_CLASS, stock_redis_config
from moon_features.store.online_reader import OnlineReader
from moon_features.store.repo import DATA_DIR, apply_repo

from materialize import assert_classes  # bench/ is this script's folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/fixtures: shared with the tests
from fixtures.store_repo import (build_repo, delete_project_keys, unit_vectors, unique_project,  # noqa: E402
                                 write_embedding_source)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def time_pair(stock_fn, ours_fn, reps: int, block: int = 25, warmup: int = 10) -> tuple[list[float], list[float]]:
    """Alternate blocks of `block` calls of each, so both see the same machine load.

    Blocks rather than single calls: right after a 30 ms CPU-bound stock call the scheduler
    ranks this process behind others on a busy machine, and a 0.5 ms call that waits on a
    socket then pays that wake-up delay; alternating per call would charge it to ours.
    """
    for _ in range(warmup):
        stock_fn()
        ours_fn()
    s, o = [], []
    gc.disable()
    try:
        for _ in range(max(1, reps // block)):
            for fn, out in ((stock_fn, s), (ours_fn, o)):
                for _ in range(block):
                    t = time.perf_counter()
                    fn()
                    out.append(time.perf_counter() - t)
            gc.collect()
    finally:
        gc.enable()
    return s, o


def user_refs(reader: OnlineReader) -> list[str]:
    return [f"{v}:{f.name}" for v in (USER_PROFILE_VIEW, SEQUENCE_VIEW) for f in reader._view(v).features]


def check_same(stock: dict, lk, dim_field: str = EMBEDDING_FIELD) -> None:
    emb = lk.candidates.embeddings
    for i, v in enumerate(stock[dim_field]):
        if v is None:
            assert not lk.candidates.embedding_found[i]
        else:
            assert lk.candidates.embedding_found[i] and np.array_equal(np.asarray(v, np.float32), emb[i]), i
    user = dict(lk.user.profile, hist_item_ids=lk.user.hist_item_ids, hist_len=lk.user.hist_len)
    for name, value in user.items():
        if name in stock:
            got = stock[name][0]
            want = np.asarray(got if got is not None else [])
            assert np.array_equal(np.asarray(value), want) or (got is None and not lk.user.found), name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis", default="127.0.0.1:6379", help="Feast connection_string of the Redis to use")
    ap.add_argument("--items", type=int, default=1000, help="items in the synthetic shop")
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 250, 1000])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mf_bench_lookup_"))
    project = unique_project("mf_bench")
    repo, spec = build_repo(tmp, online="redis", project=project, redis_connection=args.redis,
                            n_items=args.items, dim=args.dims[0], version=1)
    (repo / CONFIG_FILE).write_text(stock_redis_config(project, args.redis))  # the baseline is stock Feast
    ds_items = pd.read_parquet(tmp / "shop" / "items.parquet")
    ids = ds_items["item_id"].to_numpy(np.int64)
    for v, d in enumerate(args.dims[1:], start=2):  # one embedding view per dimension
        write_embedding_source(repo / DATA_DIR, v, ids, unit_vectors(len(ids), d, seed=v), ds_items["first_seen"])
    results = []
    try:
        store = apply_repo(repo)
        assert_classes(store, STOCK_STORE_CLASS, STOCK_ENGINE_CLASS)
        t = time.perf_counter()
        store.materialize(start_date=pd.Timestamp("1970-01-02", tz="UTC"), end_date=pd.Timestamp.now(tz="UTC"))
        print(f"stock feast materialize of the repo: {time.perf_counter() - t:.1f} s")
        reader = OnlineReader(store, spec)
        urefs = user_refs(reader)
        rng = np.random.default_rng(0)
        users = pd.read_parquet(tmp / "shop" / "users.parquet")["user_id"].to_numpy(np.int64)
        print(f"{'case':<34}{'stock p50':>10}{'p99':>9}{'ours p50':>10}{'p99':>9}{'x p50':>8}{'x p99':>8}")
        for version, dim in enumerate(args.dims, start=1):
            for n in args.sizes:
                cand = rng.choice(ids, size=min(n, len(ids)), replace=False)
                user = int(rng.choice(users))
                refs = [f"{embedding_view_name(version)}:{EMBEDDING_FIELD}"] + urefs
                rows = [{"user_id": user, "item_id": int(i)} for i in cand]

                def stock():
                    return store.get_online_features(features=refs, entity_rows=rows).to_dict()

                def ours():
                    return reader.lookup(user, cand, version=version, profiles=False, history=False)

                check_same(stock(), ours())
                s, o = time_pair(stock, ours, args.reps)
                results.append(report(f"embeddings+user d={dim} n={n}", s, o, dim, n, "embeddings_and_user"))
        # The serving path: candidates' and history items' profiles + embeddings, user profile + sequence.
        version, dim = args.dims.index(128) + 1 if 128 in args.dims else 1, 128 if 128 in args.dims else args.dims[0]
        item_refs = [f"item_profile:{f.name}" for f in reader._view("item_profile").features]
        item_refs.append(f"{embedding_view_name(version)}:{EMBEDDING_FIELD}")
        for n in args.sizes:
            cand = rng.choice(ids, size=min(n, len(ids)), replace=False)
            user = int(rng.choice(users))

            def stock_full():
                u = store.get_online_features(features=urefs, entity_rows=[{"user_id": user}]).to_dict()
                hist = u["hist_item_ids"][0] or []
                rows = [{"item_id": int(i)} for i in list(cand) + list(hist)]
                return u, store.get_online_features(features=item_refs, entity_rows=rows).to_dict()

            def ours_full():
                return reader.lookup(user, cand, version=version)

            u, items = stock_full()
            lk = ours_full()
            allemb = np.concatenate([lk.candidates.embeddings, lk.history.embeddings])
            assert all(np.array_equal(np.asarray(v, np.float32), allemb[i]) for i, v in enumerate(items["embedding"])
                       if v is not None)
            s, o = time_pair(stock_full, ours_full, args.reps)
            results.append(report(f"full lookup d={dim} n={n}+hist", s, o, dim, n, "full_lookup"))
        reader.close()
    finally:
        print(f"deleted {delete_project_keys(project, args.redis)} Redis keys of project {project}")
        print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(case, s, o, dim, n, kind) -> dict:
    s50, s99 = percentiles(s)
    o50, o99 = percentiles(o)
    print(f"{case:<34}{s50:>10.3f}{s99:>9.3f}{o50:>10.3f}{o99:>9.3f}{s50 / o50:>8.1f}{s99 / o99:>8.1f}", flush=True)
    return {"case": kind, "dim": dim, "n": n, "stock_p50_ms": s50, "stock_p99_ms": s99,
            "ours_p50_ms": o50, "ours_p99_ms": o99, "ratio_p50": s50 / o50, "ratio_p99": s99 / o99}


if __name__ == "__main__":
    main()
