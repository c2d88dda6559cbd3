"""GlobalBatchNorm1d in 2 real gloo processes (loopback) equals nn.BatchNorm1d on the whole batch:
outputs, input gradients and running statistics, with uneven parts and with an empty one."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import torch

CASES = [[(0, 7), (7, 9)], [(0, 9), (9, 9)]]  # rows of a 9-row batch per rank; rank 1 gets none in the second

# One rank: plain subprocesses (not multiprocessing), so nothing of the test process (Ray, fork
# state) leaks into them.
WORKER = """
import os, sys, torch, torch.distributed as dist
from ctr_models.layers.global_batch_norm import GlobalBatchNorm1d
rank, port, out, cases = int(sys.argv[1]), sys.argv[2], sys.argv[3], eval(sys.argv[4])
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
dist.init_process_group("gloo", rank=rank, world_size=2)
got = []
for parts in cases:
    a, b = parts[rank]
    part = (torch.linspace(-3, 5, 36).reshape(9, 4) ** 2)[a:b].clone().requires_grad_(True)
    bn = GlobalBatchNorm1d(4)
    y = bn(part)
    (y * torch.arange(1.0, 5.0)).sum().backward()
    got.append((y.detach(), part.grad, bn.running_mean, bn.running_var))
dist.destroy_process_group()
torch.save(got, out)
"""


def test_global_batch_norm_equals_whole_batch(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(r), str(port), str(tmp_path / f"{r}.pt"), repr(CASES)])
             for r in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    got = [torch.load(tmp_path / f"{r}.pt") for r in (0, 1)]
    x = (torch.linspace(-3, 5, 36).reshape(9, 4) ** 2).requires_grad_(True)
    bn = torch.nn.BatchNorm1d(4)
    y = bn(x)
    (y * torch.arange(1.0, 5.0)).sum().backward()  # a loss that weights the units differently
    for case in range(len(CASES)):
        r0, r1 = got[0][case], got[1][case]
        assert torch.allclose(torch.cat([r0[0], r1[0]]), y, atol=1e-5)
        # the gradient also flows through the shared mean and variance into the other rank's rows
        assert torch.allclose(torch.cat([r0[1], r1[1]]), x.grad, atol=1e-5)
        for r in (r0, r1):
            assert torch.allclose(r[2], bn.running_mean, atol=1e-5) and torch.allclose(r[3], bn.running_var, atol=1e-5)
