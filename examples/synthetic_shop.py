"""The synthetic shop end to end through the Python API (the same steps as `moon-features demo`).

    python examples/synthetic_shop.py [--items 1000] [--workdir runs/example_shop]
"""
import argparse
from pathlib import Path

from moon_features.demo import run_demo

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--workdir", default="runs/example_shop")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    run_demo(workdir=workdir, repo=workdir / "feature_repo", n_items=args.items)
