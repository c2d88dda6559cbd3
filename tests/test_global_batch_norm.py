"""GlobalBatchNorm1d in 2 real gloo processes (loopback) equals nn.BatchNorm1d on the whole batch:
outputs, input gradients and running statistics, with uneven parts and with an empty one."""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ctr_models.layers.global_batch_norm import GlobalBatchNorm1d

CASES = [[(0, 7), (7, 9)], [(0, 9), (9, 9)]]  # rows of a 9-row batch per rank; rank 1 gets none in the second


def _batch() -> torch.Tensor:
    return torch.linspace(-3, 5, 9 * 4).reshape(9, 4) ** 2


def _loss(y: torch.Tensor) -> torch.Tensor:
    return (y * torch.arange(1.0, 5.0)).sum()  # weights the units differently


def _worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        for case, parts in enumerate(CASES):
            a, b = parts[rank]
            part = _batch()[a:b].clone().requires_grad_(True)
            bn = GlobalBatchNorm1d(4)
            y = bn(part)
            _loss(y).backward()
            out[case, rank] = (y.detach(), part.grad, bn.running_mean, bn.running_var)
    finally:
        dist.destroy_process_group()


def test_global_batch_norm_equals_whole_batch():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(port, out), nprocs=2, join=True)
        got = dict(out)
    x = _batch().requires_grad_(True)
    bn = torch.nn.BatchNorm1d(4)
    y = bn(x)
    _loss(y).backward()
    for case in range(len(CASES)):
        assert torch.allclose(torch.cat([got[case, 0][0], got[case, 1][0]]), y, atol=1e-5)
        # the gradient also flows through the shared mean and variance into the other rank's rows
        assert torch.allclose(torch.cat([got[case, 0][1], got[case, 1][1]]), x.grad, atol=1e-5)
        for rank in (0, 1):
            assert torch.allclose(got[case, rank][2], bn.running_mean, atol=1e-5)
            assert torch.allclose(got[case, rank][3], bn.running_var, atol=1e-5)
