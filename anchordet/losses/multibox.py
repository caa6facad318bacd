"""MultiBox loss (Liu et al. 2016, Eq. 1-3; seed 002's MultiBoxLoss):

    L = (L_conf + L_loc) / N

L_conf: softmax cross-entropy over K + 1 classes (background = index K) on the positive default
boxes and on the hard negatives (``mine_hard_negatives``, 3 per positive); L_loc: smooth L1
(beta 1) between predicted and encoded deltas (``BoxCoder`` weights 10, 10, 5, 5) on the
positives. N is the number of positives in the batch, at least 1: ssd.pytorch divides by 0
when a batch has no gt, torchvision clamps to 1 as here (under DDP the detector passes the mean
count over processes as ``normalizer``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from anchordet.losses.box import box_regression_loss
from anchordet.losses.dense_targets import NEGATIVE, DenseTargets
from anchordet.sampling.hard_negatives import mine_hard_negatives


def multibox_loss(cls_logits: Tensor, box_deltas: Tensor, targets: DenseTargets, neg_pos_ratio: float = 3.0,
                  min_negatives: int = 3, box_loss_beta: float = 1.0,
                  normalizer: Tensor | None = None) -> dict[str, Tensor]:
    """Args:
        cls_logits: (B, A, K + 1) logits, background last.
        box_deltas: (B, A, 4) predicted deltas.
        targets: per-anchor targets from ``DenseTargetBuilder`` (B, A); IGNORE anchors are
            neither positives nor negatives.
        neg_pos_ratio, min_negatives: see ``mine_hard_negatives``.
        box_loss_beta: smooth L1 beta (1.0: ssd.pytorch, torchvision).
        normalizer: what both sums are divided by (default: max(1, N), this batch's positives).
    Returns:
        {"loss_cls": scalar, "loss_box": scalar}, both divided by ``normalizer``.
    """
    background = cls_logits.shape[-1] - 1
    positive = targets.positive  # (B, A)
    negative = targets.match_labels == NEGATIVE
    labels = torch.where(positive, targets.gt_labels, background)  # (B, A)
    ce = F.cross_entropy(cls_logits.float().flatten(0, 1), labels.flatten(), reduction="none")
    ce = ce.view(labels.shape)  # (B, A)
    hard_negative = mine_hard_negatives(ce, positive, negative, neg_pos_ratio, min_negatives)
    if normalizer is None:
        normalizer = positive.sum().clamp(min=1).float()
    loss_cls = torch.where(positive | hard_negative, ce, 0.0).sum()
    loss_box = box_regression_loss(box_deltas, targets.box_targets, positive, "smooth_l1", box_loss_beta)
    return {"loss_cls": loss_cls / normalizer, "loss_box": loss_box / normalizer}
