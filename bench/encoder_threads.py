"""Stage-1 step time of the demo encoder at 1, 2, ... intra-op threads, on the machine as it is now.

Why the encoder's default thread count is the idle cores (moon_features/encoder/runtime.py):
on a busy 2-core machine a second thread waits for a core and slows every step. The steps run
on synthetic cached tower outputs (the training loop's inputs with frozen towers), so the
figure is the trainable part only. Prints seconds per step per thread count, the load average,
and the default `safe_thread_count()` chose.

    .venv/bin/python bench/encoder_threads.py --steps 20
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from moon_features.encoder.configuration import MoonEncoderConfig, get_preset
from moon_features.encoder.losses import alignment_loss
from moon_features.encoder.modeling import ItemBatch, MoonItemEncoder
from moon_features.encoder.runtime import available_cores, safe_thread_count
from moon_features.encoder.towers import EfficientNetTower


def step_seconds(threads: int, steps: int, batch: int = 64) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = MoonEncoderConfig(**{**get_preset("demo").model, "text_tower": "bert", "text_hidden_size": 384,
                               "text_layers": 1, "text_heads": 4, "freeze_text_tower": True})
    model = MoonItemEncoder(cfg).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    tokens = EfficientNetTower(cfg)(torch.zeros(1, 3, cfg.image_size, cfg.image_size)).shape[1:]
    b = ItemBatch(has_image=torch.ones(batch, dtype=torch.bool), attention_mask=torch.ones(batch, 12, dtype=torch.long),
                  attribute_ids=torch.zeros(batch, 1, dtype=torch.long), image_raw=torch.randn(batch, *tokens).half(),
                  text_raw=torch.randn(batch, 12, 384).half(), colour_raw=torch.rand(batch, cfg.colour_bins ** 3))
    ids = torch.arange(batch)
    times = []
    for _ in range(steps + 2):  # the first two warm up
        t0 = time.perf_counter()
        out = model(b)
        loss = alignment_loss(out.image, out.text, ids, model.logit_scale, cfg.embedding_dims)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sum(times[2:]) / steps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    load0 = os.getloadavg()[0]
    results = {n: step_seconds(n, args.steps) for n in range(1, available_cores() + 1)}
    print(f"cores {available_cores()}, 1-min load {load0:.2f} at start; default threads now: {safe_thread_count()}")
    for n, s in results.items():
        print(f"  {n} thread(s): {s * 1000:.0f} ms / stage-1 step (x{s / results[1]:.2f} of 1 thread)")


if __name__ == "__main__":
    main()
