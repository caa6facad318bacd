"""Box regression losses on encoded deltas: smooth L1 (Girshick 2015, Eq. 3) and L1."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def smooth_l1(input: Tensor, target: Tensor, beta: float) -> Tensor:
    """Element-wise smooth L1: 0.5 x^2 / beta where |x| < beta, else |x| - 0.5 beta.
    ``beta = 0`` is plain L1."""
    diff = (input.float() - target.float()).abs()
    if beta <= 0:
        return diff
    return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


def box_regression_loss(pred_deltas: Tensor, target_deltas: Tensor, positive: Tensor,
                        kind: Literal["smooth_l1", "l1"] = "smooth_l1", beta: float = 1.0 / 9) -> Tensor:
    """Summed box loss over positive anchors (0 when there are none, with a gradient).

    Args:
        pred_deltas: (..., 4) predicted deltas.
        target_deltas: (..., 4) encoded targets.
        positive: (...) bool mask of the anchors that have a box target.
        kind: "smooth_l1" (beta as given; 1/9 is Detectron's RetinaNet value, 1.0 the SSD /
            Faster R-CNN one) or "l1" (torchvision's RetinaNet).
    """
    if kind not in ("smooth_l1", "l1"):
        raise ValueError(f"box loss kind must be 'smooth_l1' or 'l1', got {kind!r}")
    beta = 0.0 if kind == "l1" else beta
    return smooth_l1(pred_deltas[positive], target_deltas[positive], beta).sum()
