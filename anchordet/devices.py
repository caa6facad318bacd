"""Which torch device to run on: one rule for training (``run.device``) and for the commands that
load a model (``--device``); and how many CPU cores this process has."""
from __future__ import annotations

import os

import torch

from anchordet import distributed
from anchordet.errors import UserError


def resolve_device(name: str) -> torch.device:
    """"auto" (CUDA when available), "cpu", "cuda" or "cuda:N" -> a device. Under torchrun a
    CUDA process takes the GPU of its LOCAL_RANK (and makes it current).

    Raises:
        UserError: CUDA asked for on a machine without it.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} (run.device / --device): CUDA is not available on this machine")
        if distributed.launched_by_torchrun():
            device = torch.device("cuda", distributed.local_rank())
            torch.cuda.set_device(device)
    return device


def cpu_count() -> int:
    """CPU cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
