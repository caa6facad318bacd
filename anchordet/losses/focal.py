"""Sigmoid focal loss (Lin et al. 2017, Eq. 5): FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise focal loss.

    Args:
        logits: (..., K) raw scores.
        targets: (..., K) float in {0, 1} (one-hot; all zeros for background).
        alpha: weight of the positive class; a negative value disables the alpha weighting.
    Returns:
        (..., K) float32 losses, unreduced.
    """
    logits = logits.float()
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def dense_focal_loss(cls_logits: Tensor, gt_labels: Tensor, positive: Tensor, valid: Tensor,
                     alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Summed focal loss over the anchors that take part (not IGNORE).

    Args:
        cls_logits: (B, A, K) logits.
        gt_labels: (B, A) int64 class of the matched gt (read only where ``positive``).
        positive: (B, A) bool.
        valid: (B, A) bool; IGNORE anchors contribute nothing.
    Returns:
        scalar: the sum (the caller divides by the number of positives, Lin et al. Sec. 3.3).
    """
    num_classes = cls_logits.shape[-1]
    one_hot = F.one_hot(gt_labels.clamp(min=0), num_classes).to(torch.float32)  # (B, A, K)
    one_hot = one_hot * positive[..., None]
    loss = sigmoid_focal_loss(cls_logits[valid], one_hot[valid], alpha, gamma)
    return loss.sum()
