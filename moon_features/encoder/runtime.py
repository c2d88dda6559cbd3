"""How an encoder command uses the machine: a thread count that is safe by default, and a time
estimate printed before each long loop (measured on its first few steps, then extrapolated).

Why not torch's default thread count: torch starts one intra-op thread per core. On a 2-core
machine that is already busy (other jobs, a second training run), two threads per process
oversubscribe the cores and every parallel op waits for the slowest thread: issue #19 saw
stage 1 run about 10x slower with `--threads 2` on a loaded 2-core machine. The default
therefore counts only the cores that are idle now (cores minus the 1-minute load average),
and never more than MAX_DEFAULT_THREADS (the fusion's small matmuls gain little beyond that).
docs/encoder.md, "Threads", has the measurement.
"""
from __future__ import annotations

import os
import time

import torch
from tqdm.auto import tqdm

MAX_DEFAULT_THREADS = 4


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


def safe_thread_count(cores: int | None = None, load: float | None = None) -> int:
    """Intra-op threads that do not oversubscribe: the idle cores (cores - 1-minute load), at
    least 1, at most MAX_DEFAULT_THREADS."""
    cores = available_cores() if cores is None else cores
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(MAX_DEFAULT_THREADS, cores, int(cores - load)))


def set_threads(requested: int | None, verbose: bool = True) -> int:
    """Use `requested` threads, or `safe_thread_count()` when None; returns the number set."""
    n = max(1, int(requested)) if requested else safe_thread_count()
    torch.set_num_threads(n)
    if verbose and not requested:
        print(f"threads: {n} (of {available_cores()} cores, 1-min load {_load():.1f}; --threads to override)")
    return n


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def format_duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class TimeEstimate:
    """Call `step()` after each unit of a loop of `total` units; after `probe` units it prints
    "<label>: ~N min for <total> <unit>" once (the rate of the probed units, extrapolated)."""

    def __init__(self, label: str, total: int, unit: str = "batches", probe: int = 3, enabled: bool = True):
        self.label, self.total, self.unit = label, total, unit
        self.probe, self.enabled = max(1, min(probe, total)), enabled
        self.done, self.t0, self.estimate = 0, time.perf_counter(), None

    def step(self, units: int = 1) -> None:
        self.done += units
        if self.estimate is None and self.done >= self.probe:
            rate = (time.perf_counter() - self.t0) / self.done
            self.estimate = rate * self.total
            if self.enabled:
                tqdm.write(f"{self.label}: ~{format_duration(self.estimate)} for {self.total:,} {self.unit} "
                           f"(measured on the first {self.done:,})")
