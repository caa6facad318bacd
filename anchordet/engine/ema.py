"""Exponential moving average (EMA) of a model's weights (``solver.ema_decay``).

After every optimizer step ``ema = d * ema + (1 - d) * weights`` for every floating-point entry
of the state dict (parameters and BatchNorm statistics, as timm's ModelEma and YOLOv5 do);
integer entries (``num_batches_tracked``) are copied. The decay ramps up as TensorFlow's
``ExponentialMovingAverage(num_updates=...)`` does, ``d_t = min(decay, (1 + t) / (10 + t))``
after t updates, so that the first steps do not leave the average stuck near the random
initialisation; the decay itself applies from t = 9 d / (1 - d) - 1 on (890 updates for 0.99,
4490 for 0.998): before that the average covers about the last tenth of the run. The trainer evaluates, and writes best / last weights from, the average.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """The averaged copy of ``model`` (``module``, always in eval mode, no gradients).

    Args:
        model: the trained model (not a DDP wrapper: every process holds the same weights, so
            each keeps the same average).
        decay: the final decay, in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        """The decay of the next update (the ramp of the module docstring)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold ``model``'s current weights into the average."""
        decay = self.current_decay()
        weights = model.state_dict()
        for name, average in self.module.state_dict().items():
            value = weights[name].detach()
            if average.dtype.is_floating_point:
                average.mul_(decay).add_(value.to(average.dtype), alpha=1.0 - decay)
            else:
                average.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
