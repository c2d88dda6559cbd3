"""The MOON lab on MovieLens-100k with posters: exchange rate, scaling sweeps, report.

    python bench/lab.py --run runs/lab/movielens                 # the full lab (preset movielens)
    python bench/lab.py --run runs/lab/movielens-reduced --reduced   # what fits a loaded machine

Same as `moon-features lab run --preset movielens --run DIR` with two extras: `--reduced`
shrinks the preset (fewer snapshots, no negatives sweep, fewer L) and records the reduced
preset in <run>/lab.json, and `--sweeps` orders the scaling sweeps. Re-running resumes.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moon_features.lab.exchange_rate import run_exchange_rate  # noqa: E402
from moon_features.lab.presets import get_lab_preset  # noqa: E402
from moon_features.lab.report import build_report  # noqa: E402
from moon_features.lab.scaling import run_scaling  # noqa: E402
from moon_features.lab.session import LabSession  # noqa: E402

# A loaded 2-core machine spends ~4-6 min per encoder training call just caching the frozen
# towers' outputs, so the reduced lab keeps 3 chain snapshots and skips the negatives sweep.
REDUCED = dict(schedule=dict(pretrain_epochs=10, posttrain_epochs=2, max_pairs_per_epoch=2048, augment_views=1),
               pretrain_snapshots=(10,), posttrain_snapshots=(1, 2), extra_dims=(32, 128),
               seq_lens=(5, 20, 50, 100), seq_len_baseline=False, queue_sizes=())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="MovieLens-100k with posters (default ../shared/data/movielens-100k)")
    ap.add_argument("--run", default="runs/lab/movielens")
    ap.add_argument("--reduced", action="store_true")
    ap.add_argument("--sweeps", default="examples,seq_len,negatives")
    ap.add_argument("--queue-sizes", default=None, help="override the negatives sweep, e.g. 0,4096")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--serving", action="append", default=None)
    args = ap.parse_args(argv)
    preset = get_lab_preset("movielens")
    if args.reduced:
        preset = preset.with_overrides(name="movielens", **REDUCED)
    if args.queue_sizes:
        preset = preset.with_overrides(queue_sizes=tuple(int(q) for q in args.queue_sizes.split(",")))
    t0 = time.perf_counter()
    cmd = "python bench/lab.py " + " ".join(sys.argv[1:] if argv is None else argv)
    s = LabSession(args.run, preset, args.data, args.threads, True, cmd)
    started, load_before = time.strftime("%Y-%m-%dT%H:%M:%S"), os.getloadavg()
    s.run.update_meta(reduced=bool(args.reduced))
    run_exchange_rate(args.run, session=s)
    sweeps = [w for w in args.sweeps.split(",") if w and not (w == "negatives" and not preset.queue_sizes)]
    for w in sweeps:  # one at a time, so a cut-short run keeps every finished sweep's JSON and figure
        run_scaling(args.run, session=s, sweeps=(w,))
    # one record per invocation: a resumed or re-reported run must not overwrite the first one's time
    invocations = s.run.meta().get("invocations", [])
    invocations.append({"command": cmd, "started": started, "seconds": round(time.perf_counter() - t0, 1),
                        "load_before": load_before, "load_after": os.getloadavg()})
    s.run.update_meta(invocations=invocations)
    build_report(args.run, args.serving)
    print(f"lab on MovieLens: {time.perf_counter() - t0:,.0f} s -> {args.run}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
