"""Batch norm over the global batch of data-parallel training, on CPU (gloo) as well as GPU.

torch's SyncBatchNorm runs on GPUs only. Data-parallel training that is to equal one process
(moon_features/training/ray_train.py) needs every worker to normalise with the statistics of the
whole global batch, not of its own part, and to update the running statistics the same way. This
layer all-reduces the per-unit sums (autograd-aware, so the gradient through the shared mean and
variance reaches every worker) and then normalises exactly like nn.BatchNorm1d. Outside training,
or without an initialised process group, it is nn.BatchNorm1d.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """nn.BatchNorm1d on [N, C] whose training statistics are summed over all processes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        if x.dim() != 2:
            raise ValueError(f"GlobalBatchNorm1d takes [N, C] inputs, got shape {tuple(x.shape)}")
        c = x.shape[-1]
        x64 = x.double()  # E[x^2] - E[x]^2 in float64: no cancellation against the one-pass BN
        local = torch.cat([x64.sum(0), (x64 * x64).sum(0), x64.new_tensor([x.shape[0]])])
        total = dist_fn.all_reduce(local)  # SUM over processes; its backward sums the gradients too
        n = int(total[-1].item())
        if n < 2:  # as DiceNorm: no batch statistics from one row; every process takes this branch
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            training=False, eps=self.eps)
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.to(x.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_((var * n / (n - 1)).to(x.dtype), alpha=m)
        y = ((x64 - mean) / torch.sqrt(var + self.eps)).to(x.dtype)
        return y * self.weight + self.bias if self.affine else y


def global_batch_norm(model: nn.Module) -> nn.Module:
    """`model` with every BatchNorm1d (Dice's included) replaced in place by a GlobalBatchNorm1d
    holding the same buffers and parameters; the state_dict keys do not change."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm1d) and not isinstance(child, GlobalBatchNorm1d):
                new = GlobalBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine,
                                        child.track_running_stats)
                new.load_state_dict(child.state_dict())
                new.train(child.training)
                setattr(parent, name, new)
    return model
