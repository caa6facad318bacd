"""Synchronized BatchNorm for DDP on any backend (``model.sync_batch_norm``).

``torch.nn.SyncBatchNorm`` refuses CPU tensors (it needs CUDA kernels), so CPU runs with gloo,
where the engine is tested, could not use it. ``SyncBatchNorm2d`` computes the statistics of
the global batch with two differentiable all-reduces (``torch.distributed.nn.functional``):
the per-channel sums and the element count, then the sums of squared deviations from the
global mean (two passes, as a single process computes its variance). The backward of an
all-reduce all-reduces the gradients, so the gradients (averaged by DDP) equal those of one
process on the global batch with plain BatchNorm (tested with 2 gloo processes).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn


def _global_sum(value: Tensor) -> Tensor:
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(value, op=dist.ReduceOp.SUM)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are those of all processes' batches.

    Input (B, C, H, W). In eval mode, or outside a process group of 2 or more, it is plain
    BatchNorm2d. The same parameters and buffers (and state-dict keys) as BatchNorm2d.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        count = x.new_tensor([x.numel() / channels])
        totals = _global_sum(torch.cat((x.sum(dim=(0, 2, 3)), count)))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = x - mean.view(1, -1, 1, 1)
        var = _global_sum((centred * centred).sum(dim=(0, 2, 3))) / n
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), float(n))
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, n: float) -> None:
        """As BatchNorm does: momentum (or the cumulative mean when None), unbiased variance."""
        self.num_batches_tracked += 1
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(var * (n / max(n - 1, 1.0)), alpha=momentum)


def convert_sync_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` in ``module`` (in place; frozen BN is left alone) by a
    ``SyncBatchNorm2d`` with the same options, parameters and statistics. Returns ``module``."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats, device=_device_of(child), dtype=_dtype_of(child))
            synced.load_state_dict(child.state_dict())
            synced.train(child.training)
            if child.affine:
                synced.weight.requires_grad_(child.weight.requires_grad)
                synced.bias.requires_grad_(child.bias.requires_grad)
            setattr(module, name, synced)
        else:
            convert_sync_batch_norm(child)
    return module


def _device_of(module: nn.Module) -> torch.device:
    tensors = list(module.parameters()) + list(module.buffers())
    return tensors[0].device if tensors else torch.device("cpu")


def _dtype_of(module: nn.Module) -> torch.dtype:
    floats = [t for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()]
    return floats[0].dtype if floats else torch.float32
