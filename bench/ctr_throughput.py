"""CTR training / inference throughput: ctr_models DIN vs deepctr-torch 0.3.0 DIN, same run.

Same features (MovieLens-100k, the ctr_quality protocol's: 6 sparse fields + item / genre
sequences of length 50), same batch sizes (train 256, predict 1024), same thread count.
Each side's own input pipeline is included: CTRData batches for ours, deepctr-torch's
fit / predict (which build their own DataLoader) for the peer.

    python bench/ctr_throughput.py --data ../shared/data/movielens-100k --threads 1
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ctr_models import DIN, CTRData, DINConfig, seed_everything  # noqa: E402
from moon_features.data import movielens_ctr  # noqa: E402


def ours_train(model, data: CTRData, batch_size: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    t0 = time.perf_counter()
    for b in data.batches(batch_size, shuffle=True, seed=0):
        loss = loss_fn(model(b), b.label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(data) / (time.perf_counter() - t0)


@torch.no_grad()
def ours_predict(model, data: CTRData, batch_size: int) -> float:
    model.eval()
    t0 = time.perf_counter()
    for b in data.batches(batch_size):
        torch.sigmoid(model(b))
    return len(data) / (time.perf_counter() - t0)


def peer(inputs, data: CTRData, dim: int, train_bs: int, pred_bs: int) -> tuple[float, float]:
    from deepctr_torch.models import DIN as PDIN

    from moon_features.training.deepctr_adapter import feature_columns, history_feature_list, to_deepctr_input

    model = PDIN(feature_columns(inputs, dim), history_feature_list(inputs), seed=0)
    model.compile("adam", "binary_crossentropy")
    x, y = to_deepctr_input(data, inputs), data.labels
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=train_bs, epochs=1, verbose=0)
        train = len(y) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    model.predict(x, batch_size=pred_bs)
    return train, len(y) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/movielens-100k"))
    p.add_argument("--samples", type=int, default=20480, help="training rows timed per side (split A train)")
    p.add_argument("--train-batch", type=int, default=256)
    p.add_argument("--predict-batch", type=int, default=1024)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats; the median is reported")
    p.add_argument("--moon-dim", type=int, default=0, help="also time our DIN with random D-dim item embeddings")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    mlc = movielens_ctr.load(args.data)
    train_idx = movielens_ctr.make_split(mlc.arrays, "A")["train"][: args.samples]
    data = CTRData(mlc.arrays, mlc.inputs).subset(train_idx)
    assert data.arrays["hist_item_id"].shape[1] == 50

    variants = {"ours DIN (id)": (DINConfig(embed_dim=args.dim), mlc.inputs, data)}
    if args.moon_dim:
        rng = np.random.default_rng(0)
        table = rng.normal(size=(mlc.inputs.sparse_field("item_id").vocab_size, args.moon_dim)).astype(np.float32)
        table[0] = 0
        moon_inputs = type(mlc.inputs)(**{**mlc.inputs.__dict__, "moon_dim": args.moon_dim})
        variants[f"ours DIN + item emb d={args.moon_dim}"] = (
            DINConfig(embed_dim=args.dim, use_moon=True, moon_proj_dim=args.dim), moon_inputs,
            CTRData(mlc.arrays, moon_inputs, moon_table=table).subset(train_idx))
    res: dict[str, list[tuple[float, float]]] = {k: [] for k in ["deepctr-torch DIN", *variants]}
    for r in range(args.repeats):  # alternate so that load from other processes hits both sides
        res["deepctr-torch DIN"].append(peer(mlc.inputs, data, args.dim, args.train_batch, args.predict_batch))
        for name, (cfg, inputs, d) in variants.items():
            seed_everything(r)
            model = DIN(cfg, inputs)
            res[name].append((ours_train(model, d, args.train_batch), ours_predict(model, d, args.predict_batch)))
    med = {k: tuple(float(np.median([v[i] for v in vals])) for i in range(2)) for k, vals in res.items()}
    base = med["deepctr-torch DIN"]
    print(f"\nthroughput, samples/s (median of {args.repeats}; {len(data):,} MovieLens rows, L=50, "
          f"train batch {args.train_batch}, predict batch {args.predict_batch}, {args.threads} thread(s))")
    print("| model | train samples/s | predict samples/s | train x deepctr | predict x deepctr |")
    print("|---|---|---|---|---|")
    for k, (tr, pr) in med.items():
        print(f"| {k} | {tr:,.0f} | {pr:,.0f} | {tr / base[0]:.2f}x | {pr / base[1]:.2f}x |")
    print(f"ctr_throughput: done in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
