"""Process-group helpers: one code path for a single process, torchrun on CPU (gloo) and on GPUs (NCCL)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device: torch.device) -> None:
    """Join the process group torchrun describes (NCCL for CUDA devices, gloo otherwise)."""
    if launched_by_torchrun() and not is_distributed():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over processes (identity in a single process), without autograd history.

    Losses normalized by a count (positives in RetinaNet and SSD) use the mean count over
    processes, so that averaged DDP gradients equal a single process on the global batch.
    """
    if not is_distributed():
        return value
    value = value.detach().clone().float()
    dist.all_reduce(value)
    return value / world_size()


def all_reduce_sums(values: dict[str, float]) -> dict[str, float]:
    """Sum of each value over processes."""
    if not is_distributed() or not values:
        return dict(values)
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return dict(zip(keys, tensor.tolist()))


def all_gather_objects(obj):
    """A list with every process's ``obj`` (in rank order)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def all_reduce_max(values: list[float]) -> list[float]:
    """The largest of each value over processes (one all-reduce for all of them)."""
    if not is_distributed():
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()
