"""Redis Cluster: bulk writer vs stock `feast materialize`, fast reader vs stock get_online_features.

Starts a local 3-master + 3-replica Redis Cluster on loopback ports (LocalRedisCluster; stopped at
the end), builds one repo with N embeddings (default 100,000, d = 128) and measures, in the same run
on the same cluster:

  materialize  stock: online_store type redis, redis_type redis_cluster, Feast's local compute
               engine: store.materialize(feature_views=[embedding view])
               ours:  materialize_embeddings (moon-features materialize-embeddings) into another
               project; both projects' hashes must be byte-identical
  lookup       stock: get_online_features(embedding + user profile + sequence, n candidate rows)
               ours:  OnlineReader.lookup(user, candidates, profiles=False, history=False)
               (same values checked first), p50 / p99 over interleaved blocks

    nice -n 10 python bench/scale_out.py --rows 100000 --dim 128 --candidates 250
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_lookup import check_same, percentiles, time_pair, user_refs  # noqa: E402

from moon_features.spec import EMBEDDING_FIELD, ITEM_PROFILE_VIEW, SEQUENCE_VIEW, USER_PROFILE_VIEW  # noqa: E402
from moon_features.spec import embedding_view_name  # noqa: E402
from moon_features.store.bulk_writer import materialize_embeddings  # noqa: E402
from moon_features.store.local_cluster import LocalRedisCluster  # noqa: E402
from moon_features.store.online_reader import OnlineReader  # noqa: E402
from moon_features.store.repo import apply_repo  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/fixtures: shared with the tests
from fixtures.store_repo import build_repo, stock_redis_yaml, unique_project  # noqa: E402

START = pd.Timestamp("1970-01-02", tz="UTC")


def materialize_pair(repo, cluster, rows: int, batch_size: int) -> tuple[dict, object]:
    """Stock feast materialize and the bulk writer into two projects; (figures, the stock store)."""
    view = embedding_view_name(1)
    stores = {}
    for kind in ("stock", "ours"):
        project = unique_project(f"mf_scale_{kind}")
        config = repo / f"feature_store.{kind}.yaml"
        config.write_text(stock_redis_yaml(project, cluster.connection_string, "redis_cluster",
                                           f"data/registry_{kind}.db"))
        stores[kind] = apply_repo(repo, config)
    end = pd.Timestamp.now(tz="UTC")
    t = time.perf_counter()
    stores["stock"].materialize(start_date=START, end_date=end, feature_views=[view])
    stock_s = time.perf_counter() - t
    t = time.perf_counter()
    materialize_embeddings(stores["ours"], 1, start_date=START, end_date=end, batch_size=batch_size, progress=False)
    ours_s = time.perf_counter() - t
    snaps = {k: {key[:-len(s.config.project)]: v for key, v in cluster.snapshot(s.config.project).items()
                 if not key.startswith(b"moon_features:")} for k, s in stores.items()}
    assert len(snaps["stock"]) == rows and snaps["stock"] == snaps["ours"], "cluster hashes differ"
    figures = {"stock_s": stock_s, "ours_s": ours_s, "stock_rows_per_s": rows / stock_s,
               "ours_rows_per_s": rows / ours_s, "ratio": stock_s / ours_s}
    return figures, stores["stock"]


def lookup_pair(store, spec, shop_dir: Path, n: int, reps: int) -> dict:
    """Stock get_online_features vs the fast reader, 250 candidates x d + user, on the cluster."""
    store.materialize(start_date=START, end_date=pd.Timestamp.now(tz="UTC"),
                      feature_views=[USER_PROFILE_VIEW, SEQUENCE_VIEW, ITEM_PROFILE_VIEW])
    reader = OnlineReader(store, spec)
    assert reader._redis is not None and reader._redis.is_cluster
    rng = np.random.default_rng(0)
    ids = pd.read_parquet(shop_dir / "items.parquet")["item_id"].to_numpy(np.int64)
    users = pd.read_parquet(shop_dir / "users.parquet")["user_id"].to_numpy(np.int64)
    cand = rng.choice(np.arange(1, ids.max() + 1 + n * 4), size=n, replace=False)
    user = int(rng.choice(users))
    refs = [f"{embedding_view_name(1)}:{EMBEDDING_FIELD}"] + user_refs(reader)
    rows = [{"user_id": user, "item_id": int(i)} for i in cand]

    def stock():
        return store.get_online_features(features=refs, entity_rows=rows).to_dict()

    def ours():
        return reader.lookup(user, cand, profiles=False, history=False)

    check_same(stock(), ours())
    s, o = time_pair(stock, ours, reps)
    reader.close()
    (s50, s99), (o50, o99) = percentiles(s), percentiles(o)
    return {"n": n, "stock_p50_ms": s50, "stock_p99_ms": s99, "ours_p50_ms": o50, "ours_p99_ms": o99,
            "ratio_p50": s50 / o50, "ratio_p99": s99 / o99}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--candidates", type=int, default=250)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mf_bench_scale_"))
    shop_items = 200
    repo, spec = build_repo(tmp, online="sqlite", n_items=shop_items, dim=args.dim,
                            extra_embedding_items=args.rows - shop_items)
    with LocalRedisCluster() as cluster:
        print(f"local Redis Cluster: masters {cluster.masters()}, {len(cluster.ports)} nodes")
        mat, stock_store = materialize_pair(repo, cluster, args.rows, args.batch_size)
        print(f"\nmaterialize {args.rows:,} embeddings d={args.dim} into the cluster")
        print(f"  stock feast materialize {mat['stock_s']:8.2f} s {mat['stock_rows_per_s']:>10,.0f} rows/s")
        print(f"  bulk writer             {mat['ours_s']:8.2f} s {mat['ours_rows_per_s']:>10,.0f} rows/s  "
              f"{mat['ratio']:.1f}x stock (identical bytes)")
        look = lookup_pair(stock_store, spec, tmp / "shop", args.candidates, args.reps)
        print(f"\nlookup {args.candidates} candidates x {args.dim}-d + user profile + sequence on the cluster")
        print(f"  stock get_online_features p50 {look['stock_p50_ms']:7.2f} ms  p99 {look['stock_p99_ms']:7.2f} ms")
        print(f"  fast reader               p50 {look['ours_p50_ms']:7.2f} ms  p99 {look['ours_p99_ms']:7.2f} ms  "
              f"{look['ratio_p50']:.1f}x stock at p50, {look['ratio_p99']:.1f}x at p99")
    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"materialize": mat, "lookup": look, "rows": args.rows, "dim": args.dim},
                                        indent=2))


if __name__ == "__main__":
    main()
