"""SGD with momentum (no weight decay on norm layers and biases) and the warmup + step/cosine schedule."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from anchordet.config.schema import SolverConfig

_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights of convs/linears decay; norm parameters and all biases do not
    (decaying a BN scale or a bias only shrinks the function; Goyal et al. 2017, Sec. 5.1)."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            is_norm = isinstance(module, _NORM_TYPES) or type(module).__name__.endswith("Norm")
            (no_decay if is_norm or name == "bias" or param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, solver: SolverConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, solver.weight_decay)
    if solver.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=solver.lr, betas=(solver.momentum, 0.999))
    return torch.optim.SGD(groups, lr=solver.lr, momentum=solver.momentum)


def lr_factor(iteration: int, solver: SolverConfig, iters_per_epoch: int) -> float:
    """Multiplier of ``solver.lr`` at ``iteration`` (0-based): linear warmup times the schedule."""
    total = solver.epochs * iters_per_epoch
    if solver.schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * min(iteration, total) / max(total, 1)))
    else:
        epoch = iteration // max(iters_per_epoch, 1)
        factor = solver.gamma ** sum(epoch >= step for step in solver.steps)
    if iteration < solver.warmup_iters:
        alpha = iteration / solver.warmup_iters
        factor *= solver.warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, solver: SolverConfig | Callable[[], SolverConfig],
                    iters_per_epoch: int):
    """Stepped once per iteration. ``solver`` may be a function returning the current solver
    config: the trainer's, whose ``epochs`` can be shortened once (``run.fit_epochs_to_budget``)."""
    current = solver if callable(solver) else (lambda: solver)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, current(), iters_per_epoch))
