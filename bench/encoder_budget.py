"""Encoder time on a purchase-only catalogue: `encoder train` + `embed`, cold and warm tower store.

Issue #19's target: a 20k-item catalogue through the default preset in <= 20 min on 2 cores,
with the time printed by the command. The shop is the synthetic one reshaped like the issue's
real catalogue (purchase-only log, sparse ids, 70% of items without a title). The cold run
starts from an empty tower store; the warm run repeats both commands on the same catalogue
(a new --out, --no-resume), so it reads the frozen towers' outputs from disk.

    nice -n 5 .venv/bin/python bench/encoder_budget.py --items 20000 --workdir /tmp/encoder_budget

Prints each command's wall and CPU time (a busy shared machine stretches wall time; CPU seconds
are what an idle machine's wall time would be at one thread), the cold total against the
20-minute budget, and the cold / warm ratio. Pass --data to reuse a generated shop.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

BUDGET_S = 20 * 60
CLI = [sys.executable, "-m", "moon_features.cli"]
ENCODER_CLI = [sys.executable, "-m", "moon_features.encoder.cli"]  # the same `encoder` commands, stand-alone


def timed(cmd: list[str], log: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command; its output goes to `log` (the time estimates it
    prints included). CPU seconds (user + system of the command's processes) are what the run
    costs whatever else the machine is doing; wall = CPU on an idle machine at one thread."""
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, cpu = time.perf_counter() - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(f"{wall:8.1f} s wall {cpu:8.1f} s CPU  load {os.getloadavg()[0]:5.1f}  {' '.join(cmd[3:])}", flush=True)
    return wall, cpu


def run_pair(data: Path, work: Path, store: Path, tag: str, preset: str) -> dict:
    out = work / f"encoder_{tag}"
    train = timed(ENCODER_CLI + ["encoder", "train", "--data", str(data), "--out", str(out), "--preset", preset,
                         "--no-resume", "--cache-dir", str(store)], work / f"train_{tag}.log")
    embed = timed(ENCODER_CLI + ["encoder", "embed", "--data", str(data), "--model", str(out / "model"), "--out",
                         str(work / f"embeddings_{tag}.parquet"), "--cache-dir", str(store)], work / f"embed_{tag}.log")
    summary = json.loads((out / "model" / "training.json").read_text())
    return {"train_s": round(train[0], 1), "embed_s": round(embed[0], 1), "total_s": round(train[0] + embed[0], 1),
            "train_cpu_s": round(train[1], 1), "embed_cpu_s": round(embed[1], 1),
            "total_cpu_s": round(train[1] + embed[1], 1), "tower_s": summary.get("tower_seconds"),
            "epoch_s": summary.get("epoch_seconds"), "threads": summary.get("threads")}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=20000)
    p.add_argument("--data", default=None, help="an existing dataset (default: generate one in --workdir)")
    p.add_argument("--workdir", default="/tmp/encoder_budget")
    p.add_argument("--preset", default="demo", help="the CLI's default preset is demo")
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else work / f"shop{args.items}"
    if not args.data:
        shutil.rmtree(data, ignore_errors=True)
        timed(CLI + ["data", "generate", "--out", str(data), "--items", str(args.items), "--purchase-only",
                     "--sparse-ids", "--no-text-share", "0.7"], work / "generate.log")
    store = work / "tower_store"
    shutil.rmtree(store, ignore_errors=True)  # cold: nothing cached
    cold = run_pair(data, work, store, "cold", args.preset)
    warm = run_pair(data, work, store, "warm", args.preset)
    result = {"items": args.items if not args.data else None, "data": str(data), "preset": args.preset,
              "cores": os.cpu_count(), "load_1min_end": round(os.getloadavg()[0], 2), "cold": cold, "warm": warm,
              "budget_s": BUDGET_S, "cold_within_budget": cold["total_s"] <= BUDGET_S,
              "cold_over_warm": round(cold["total_s"] / warm["total_s"], 2),
              "cold_over_warm_cpu": round(cold["total_cpu_s"] / warm["total_cpu_s"], 2)}
    print(json.dumps(result, indent=2))
    print(f"encoder train + embed: cold {cold['total_s'] / 60:.1f} min wall / {cold['total_cpu_s'] / 60:.1f} min CPU "
          f"(budget {BUDGET_S / 60:.0f} min), warm {warm['total_s'] / 60:.1f} min wall / "
          f"{warm['total_cpu_s'] / 60:.1f} min CPU; cold / warm = {result['cold_over_warm']}x wall, "
          f"{result['cold_over_warm_cpu']}x CPU")


if __name__ == "__main__":
    main()
