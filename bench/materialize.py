"""Materialization throughput: moon-features bulk writer vs stock `feast materialize`, same run, same data.

One Parquet source of N embeddings (default 100,000, d = 128) is written into the real Redis
three times, each into its own Feast project (keys deleted at the end):

  stock:   stock_redis_config: type: redis + batch_engine: local, store.materialize(feature_views=[view])
           (the store and engine classes Feast builds are asserted before timing)
  ours:    the plugin config, materialize_embeddings(store, version)  (moon-features materialize-embeddings)
  plugin:  MoonRedisOnlineStore + MoonComputeEngine, store.materialize (what `feast materialize` runs
           once feature_store.yaml names the plugin)

Then: the three projects' Redis hashes must be byte-identical, and stock get_online_features
on our project must return the source's vectors (checked on a sample). Prints rows/s and ratios.

    python bench/materialize.py --rows 100000 --dim 128
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
import pandas as pd
import pyarrow.parquet as pq

from moon_features.spec import EMBEDDING_FIELD, embedding_view_name
from moon_features.store.bulk_writer import materialize_embeddings
from moon_features.store.configs import (ENGINE_TYPE, STOCK_ENGINE_CLASS, STOCK_STORE_CLASS, STORE_TYPE,
                                         plugin_redis_config, stock_redis_config)
from moon_features.store.repo import DATA_DIR, apply_repo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/fixtures: shared with the tests
from fixtures.store_repo import build_repo, delete_project_keys, project_snapshot, unique_project  # noqa: E402

START = pd.Timestamp("1970-01-02", tz="UTC")


def class_path(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def assert_classes(store, online_store: str, engine: str) -> None:
    """The baseline is what it says: check the store and engine classes Feast actually built."""
    got = (class_path(store.provider.online_store), class_path(store.provider.batch_engine))
    assert got == (online_store, engine), f"expected {(online_store, engine)}, Feast built {got}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis", default="127.0.0.1:6379")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=2_000, help="ids read back through stock get_online_features")
    ap.add_argument("--skip-plugin", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mf_bench_mat_"))
    shop_items = 50
    repo, spec = build_repo(tmp, online="sqlite", n_items=shop_items, dim=args.dim,
                            extra_embedding_items=args.rows - shop_items)
    view = embedding_view_name(1)
    projects = {}

    def open_project(kind: str):
        project = unique_project(f"mf_bench_{kind}")
        projects[kind] = project
        config = repo / f"feature_store.{kind}.yaml"
        registry = f"{DATA_DIR}/registry_{kind}.db"
        text = (stock_redis_config(project, args.redis, registry=registry) if kind == "stock"
                else plugin_redis_config(project, args.redis, registry=registry))
        config.write_text(text)
        return apply_repo(repo, config)

    figures = {"rows": args.rows, "dim": args.dim, "batch_size": args.batch_size}
    try:
        end = pd.Timestamp.now(tz="UTC")
        stock = open_project("stock")
        assert_classes(stock, STOCK_STORE_CLASS, STOCK_ENGINE_CLASS)  # stock Feast: type redis, local engine
        t = time.perf_counter()
        stock.materialize(start_date=START, end_date=end, feature_views=[view])
        figures["stock_s"] = time.perf_counter() - t

        ours = open_project("ours")
        t = time.perf_counter()
        materialize_embeddings(ours, 1, start_date=START, end_date=end, batch_size=args.batch_size)
        figures["ours_s"] = time.perf_counter() - t

        if not args.skip_plugin:
            plugin = open_project("plugin")
            assert_classes(plugin, STORE_TYPE, ENGINE_TYPE)
            t = time.perf_counter()
            plugin.materialize(start_date=START, end_date=end, feature_views=[view])
            figures["plugin_s"] = time.perf_counter() - t

        # Correctness: identical bytes across projects, and stock reads give the source's vectors.
        snaps = {k: project_snapshot(p, args.redis) for k, p in projects.items()}
        assert len(snaps["stock"]) == args.rows, len(snaps["stock"])
        assert all(s == snaps["stock"] for s in snaps.values()), "stores differ"
        src = pq.read_table(repo / DATA_DIR / f"{view}.parquet", columns=["item_id", EMBEDDING_FIELD]).to_pandas()
        sample = src.sample(n=min(args.sample, len(src)), random_state=0)
        got = ours.get_online_features(features=[f"{view}:{EMBEDDING_FIELD}"],
                                       entity_rows=[{"item_id": int(i)} for i in sample["item_id"]]).to_dict()
        assert all(np.array_equal(np.asarray(g, np.float32), np.asarray(w, np.float32))
                   for g, w in zip(got[EMBEDDING_FIELD], sample[EMBEDDING_FIELD]))
    finally:
        for p in projects.values():
            delete_project_keys(p, args.redis)

    rate = {k: args.rows / figures[f"{k}_s"] for k in ("stock", "ours", "plugin") if f"{k}_s" in figures}
    figures.update({f"{k}_rows_per_s": v for k, v in rate.items()})
    print(f"\n{args.rows:,} embeddings, d={args.dim}, into Redis {args.redis}")
    for k, v in rate.items():
        print(f"  {k:<7} {figures[f'{k}_s']:8.2f} s  {v:>10,.0f} rows/s  {v / rate['stock']:6.1f}x stock")
    print(f"  load average (1, 5, 15 min) at the end: {os.getloadavg()} on {os.cpu_count()} CPUs")
    print(f"  identical Redis bytes in all {len(projects)} projects; stock get_online_features on "
          f"{len(sample):,} sampled ids returned the source vectors")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
