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

    One autograd node with the gradient written out: it keeps only the logits and the (B, A)
    labels and masks for backward, where the elementwise version keeps about six (B, A, K)
    float tensors and copies the valid rows (benchmarks/speed.py: peak training memory).
    ``dense_focal_loss_reference`` is the elementwise version the tests compare against.
    """
    return _DenseFocalLoss.apply(cls_logits, gt_labels, positive, valid, float(alpha), float(gamma))


def dense_focal_loss_reference(cls_logits: Tensor, gt_labels: Tensor, positive: Tensor, valid: Tensor,
                               alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """The plain version of ``dense_focal_loss``: one-hot targets, ``sigmoid_focal_loss`` on
    the valid rows, summed."""
    num_classes = cls_logits.shape[-1]
    one_hot = F.one_hot(gt_labels.clamp(min=0), num_classes).to(torch.float32)  # (B, A, K)
    one_hot = one_hot * positive[..., None]
    loss = sigmoid_focal_loss(cls_logits[valid], one_hot[valid], alpha, gamma)
    return loss.sum()


def _focal_terms(logits: Tensor, gt_labels: Tensor, positive: Tensor, alpha: float):
    """z = s * x with s = +1 on the target class, -1 elsewhere, so that p_t = sigmoid(z);
    a_t = alpha on targets, 1 - alpha elsewhere (1 when alpha < 0). Shapes (B, A, K)."""
    classes = torch.arange(logits.shape[-1], device=logits.device)
    target = (classes == gt_labels[..., None]) & positive[..., None]  # (B, A, K) bool
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))  # float32 at least (AMP)
    z = torch.where(target, x, -x)
    if alpha >= 0:
        a_t = torch.where(target, alpha, 1.0 - alpha)
    else:
        a_t = torch.ones((), dtype=x.dtype, device=x.device)
    return target, z, a_t


class _DenseFocalLoss(torch.autograd.Function):
    """sum over valid anchors and all classes of -a_t (1 - p_t)^gamma log p_t, p_t = sigmoid(z).

    d/dz [-(1 - s)^g log s] with s = sigmoid(z): -(1 - s)^g [(1 - s) - g s log s]
    (d log s / dz = 1 - s, d (1 - s)^g / dz = -g s (1 - s)^g); d/dx = sign * d/dz."""

    @staticmethod
    def forward(ctx, logits, gt_labels, positive, valid, alpha, gamma):
        _, z, a_t = _focal_terms(logits, gt_labels, positive, alpha)
        log_p = F.logsigmoid(z)
        loss = -a_t * torch.sigmoid(-z).pow(gamma) * log_p  # (B, A, K)
        ctx.save_for_backward(logits, gt_labels, positive, valid)
        ctx.alpha, ctx.gamma = alpha, gamma
        return (loss * valid[..., None]).sum()

    @staticmethod
    def backward(ctx, grad_output):
        logits, gt_labels, positive, valid = ctx.saved_tensors
        target, z, a_t = _focal_terms(logits, gt_labels, positive, ctx.alpha)
        q = torch.sigmoid(-z)  # 1 - p_t
        grad_z = -a_t * q.pow(ctx.gamma) * (q - ctx.gamma * (1 - q) * F.logsigmoid(z))
        grad = torch.where(target, grad_z, -grad_z) * (valid[..., None] * grad_output)
        return grad.to(logits.dtype), None, None, None, None, None
