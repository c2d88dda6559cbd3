"""One lab run in progress: its folder, preset, data, encoder chain and shared metric context.

The exchange-rate lab and the scaling lab share points through it: an encoder variant at the
default sequence length is computed once (point kind "variants") and used by both.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from .data import LabData, load_lab_data
from .downstream import ctr_line, train_din
from ..encoder.pairs import heldout_pairs
from .encoders import Snapshot, chain_schedule, train_chain
from .intermediate import MetricContext, intermediate_metrics
from .points import LabRun
from .presets import LabError, LabPreset, get_lab_preset

VARIANTS, BASELINES = "variants", "baselines"


def metric_line(m: dict, k: int) -> str:
    return (f"image@{k} {m.get(f'image_search@{k}', float('nan')):.3f} text@{k} "
            f"{m.get(f'text_search@{k}', float('nan')):.3f} dup@{k} {m.get(f'near_duplicate@{k}', float('nan')):.3f} "
            f"align {m.get('alignment_loss', float('nan')):.3f}")


class LabSession:
    def __init__(self, run_dir: str | Path, preset: str | LabPreset = "tiny", data: str | Path | None = None,
                 threads: int = 1, progress: bool = True, command: str | None = None):
        self.run = LabRun(run_dir)
        self.preset = get_lab_preset(preset) if isinstance(preset, str) else preset
        meta = self.run.meta()
        if meta.get("preset") and meta["preset"]["name"] != self.preset.name:
            raise LabError(f"{self.run.root} is a lab run of preset {meta['preset']['name']!r}, not "
                           f"{self.preset.name!r}; use another --run folder")
        self.threads, self.progress = threads, progress
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        torch.set_num_threads(max(1, threads))
        self.data: LabData = load_lab_data(self.preset, data, self.run.root, progress)
        cmd = command or "moon-features " + " ".join(sys.argv[1:])
        self.run.update_meta(preset=self.preset.to_dict(), data=str(self.data.src), source=self.data.source,
                             threads=threads, commands=[cmd])
        self._snaps: list[Snapshot] | None = None
        self._ctx: MetricContext | None = None
        self.L = self.preset.recipe.max_len

    # -- encoders -----------------------------------------------------------------------------
    @property
    def encoder_dataset(self):
        return self.data.encoder_dataset(self.L)

    def snapshots(self) -> list[Snapshot]:
        if self._snaps is None:
            self._snaps = train_chain(self.run.root, self.preset, self.encoder_dataset, self.threads, self.progress)
        return self._snaps

    def final_snapshot(self) -> Snapshot:
        return self.snapshots()[-1]

    def heldout_pairs(self):
        train_log, test_log = self.data.encoder_logs(self.L)
        s = chain_schedule(self.preset, self.threads)
        return heldout_pairs(train_log, test_log, self.data.dataset.items["item_id"], s.pair_window,
                             s.pair_max_gap_s, max_pairs=self.preset.eval_pairs, seed=self.preset.seed,
                             novel_only=False)

    def context(self) -> MetricContext:
        if self._ctx is None:
            first = self.snapshots()[0]
            self._ctx = MetricContext.build(first.path, self.data.dataset, self.heldout_pairs(), self.preset.seed,
                                            self.progress)
            print(f"metric context: {self._ctx.n_pairs} held-out pairs, {len(self._ctx.item_ids)} items, "
                  f"built in {self._ctx.seconds:.0f} s")
        return self._ctx

    # -- points -------------------------------------------------------------------------------
    def baseline(self, max_len: int | None = None) -> dict:
        """DIN ids-only with the lab's recipe at sequence length `max_len`."""
        L = max_len or self.L

        def compute():
            arrays, inputs = self.data.ctr(L)
            return {"downstream": train_din(arrays, inputs, self.data.split(L), self.preset.recipe, None,
                                            self.progress, name=f"din_ids L={L}")}

        return self.run.run_point(BASELINES, f"din_ids_L{L}", compute, lambda r: ctr_line(r["downstream"]),
                                  {"model": "din_ids", "max_len": L}, self.progress)

    def encoder_point(self, kind: str, key: str, model_dir, dim: int | None, variant: dict,
                      downstream: bool = True, max_len: int | None = None, train_seconds: float = 0.0) -> dict:
        """Intermediate metrics (+ DIN with the embeddings) of one encoder. `model_dir` may be a
        callable returning (folder, training seconds): it is then only trained if the point is missing."""
        L = max_len or self.L
        k = self.preset.metric_k

        def compute():
            nonlocal model_dir, train_seconds
            if callable(model_dir):
                model_dir, train_seconds = model_dir()
            t0 = time.perf_counter()
            arrays, inputs = self.data.ctr(L)
            n_rows = inputs.sparse_field("item_id").vocab_size
            metrics, table = intermediate_metrics(self.context(), model_dir, dim, self.preset.ks, n_rows)
            out = {"metrics": metrics}
            cost = {"encoder_train_seconds": round(train_seconds, 1),
                    "metrics_seconds": round(time.perf_counter() - t0, 1)}
            if downstream:
                out["downstream"] = train_din(arrays, inputs, self.data.split(L), self.preset.recipe, table,
                                              self.progress, name=f"din_moon {key}")
                cost["ctr_seconds"] = out["downstream"]["ctr_seconds"]
            out["cost"] = cost
            return out

        def summary(r):
            s = metric_line(r["metrics"], k)
            return s + ("; " + ctr_line(r["downstream"]) if "downstream" in r else "")

        return self.run.run_point(kind, key, compute, summary, {**variant, "max_len": L}, self.progress)

    def variants(self) -> list[dict]:
        """The exchange-rate variants: every chain snapshot at the preset's dim, the final one also
        at `extra_dims`."""
        out = []
        for s in self.snapshots():
            out.append({"key": f"{s.name}_d{self.preset.dim}", "snapshot": s.name, "dim": self.preset.dim,
                        "stage": s.stage, "epoch": s.epoch, "posttrain": s.stage == 2,
                        "posttrain_examples": s.posttrain_examples, "train_seconds": s.train_seconds})
        final = next(v for v in out if v["snapshot"] == self.final_snapshot().name)
        for d in self.preset.extra_dims:
            if d != self.preset.dim:
                out.append({**final, "key": f"{final['snapshot']}_d{d}", "dim": d})
        return out

    def variant_point(self, v: dict) -> dict:
        snap = {s.name: s for s in self.snapshots()}[v["snapshot"]]
        return self.encoder_point(VARIANTS, v["key"], snap.path, v["dim"],
                                  {k: v[k] for k in v if k != "key"}, train_seconds=v["train_seconds"])
