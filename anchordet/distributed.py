"""Process-group helpers: one code path for a single process, torchrun on CPU (gloo) and on GPUs (NCCL).

Every collective here puts its tensor on ``collective_device()``: NCCL reduces CUDA tensors only.
On GPUs the group is ``cpu:gloo,cuda:nccl``, so object collectives and any CPU tensor work too."""
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


def process_group_backend(device: torch.device) -> str:
    """gloo on CPU; on GPUs NCCL for CUDA tensors and gloo for any CPU tensor or object."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def init_from_environment(device: torch.device) -> None:
    """Join the process group torchrun describes (``process_group_backend``)."""
    if launched_by_torchrun() and not is_distributed():
        dist.init_process_group(backend=process_group_backend(device))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def collective_device() -> torch.device:
    """Where the tensors of this module's collectives live: this process's GPU when the group
    has NCCL (NCCL reduces CUDA tensors only), else the CPU (gloo)."""
    if is_distributed() and "nccl" in str(dist.get_backend()).lower():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def _reduced(values: list[float], dtype: torch.dtype, op) -> list:
    tensor = torch.tensor(values, dtype=dtype, device=collective_device())
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def any_process(flag: bool) -> bool:
    """True on every process when ``flag`` is True on any (identity in a single process)."""
    if not is_distributed():
        return bool(flag)
    return bool(_reduced([float(bool(flag))], torch.float32, dist.ReduceOp.MAX)[0])


def all_processes(flag: bool) -> bool:
    """True on every process when ``flag`` is True on all of them."""
    if not is_distributed():
        return bool(flag)
    return bool(_reduced([float(bool(flag))], torch.float32, dist.ReduceOp.MIN)[0])


def min_over_processes(value: int) -> int:
    """The smallest ``value`` of any process, on every process."""
    if not is_distributed():
        return int(value)
    return int(_reduced([int(value)], torch.int64, dist.ReduceOp.MIN)[0])


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
    return dict(zip(keys, _reduced([float(values[k]) for k in keys], torch.float64, dist.ReduceOp.SUM)))


def all_gather_objects(obj):
    """A list with every process's ``obj`` (in rank order)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if not is_distributed():
        return
    device = collective_device()
    # NCCL's barrier needs this process's GPU named, or it guesses one (and may hang)
    dist.barrier(**({"device_ids": [device.index]} if device.type == "cuda" else {}))


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def all_reduce_max(values: list[float]) -> list[float]:
    """The largest of each value over processes (one all-reduce for all of them)."""
    if not is_distributed():
        return [float(v) for v in values]
    return _reduced([float(v) for v in values], torch.float64, dist.ReduceOp.MAX)
