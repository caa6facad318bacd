"""The Fast R-CNN stage's loss (Girshick 2015, Eq. 1 and 3): cross-entropy over the sampled RoIs
and smooth L1 on the positives' deltas of their gt class."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from anchordet.losses.box import smooth_l1
from anchordet.losses.roi_targets import RoITargets


def fast_rcnn_loss(class_logits: Tensor, box_deltas: Tensor, sampled: RoITargets, num_classes: int,
                   box_loss_beta: float = 1.0, normalizer: Tensor | float | None = None) -> dict[str, Tensor]:
    """Args:
        class_logits: (S, K + 1) logits of the S sampled RoIs, background last.
        box_deltas: (S, (K + 1) * 4) class-specific deltas (weights 10, 10, 5, 5).
        sampled: their ``RoITargets`` (labels K for background).
        num_classes: K.
        box_loss_beta: smooth L1 beta (1: Girshick 2015 Eq. 3).
        normalizer: what both sums are divided by (default: S, at least 1; torchvision,
            detectron2).
    Returns:
        {"loss_roi_cls", "loss_roi_box"}: scalars.
    """
    if normalizer is None:
        normalizer = max(len(sampled.labels), 1)
    loss_cls = F.cross_entropy(class_logits.float(), sampled.labels, reduction="sum")
    positive = sampled.labels < num_classes
    deltas = box_deltas.reshape(len(sampled.labels), num_classes + 1, 4)  # (S, K + 1, 4)
    pred = deltas[positive, sampled.labels[positive]]  # (P, 4): each RoI's own class
    loss_box = smooth_l1(pred, sampled.box_targets[positive], box_loss_beta).sum()
    return {"loss_roi_cls": loss_cls / normalizer, "loss_roi_box": loss_box / normalizer}
