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


def _negative_terms(x: Tensor, gamma: float) -> tuple[Tensor, Tensor, Tensor]:
    """Every logit read as a negative (target 0): p_t = sigmoid(-x), so
    -(1 - p_t)^gamma log p_t = sigmoid(x)^gamma * softplus(x). Returns (s, s^gamma, softplus)."""
    s = torch.sigmoid(x)
    return s, s.pow(gamma), F.softplus(x)


def _positive_index(x: Tensor, gt_labels: Tensor, positive: Tensor, valid: Tensor):
    """Flat indices (P,) into x (B, A, K) of the target logits of the valid positive anchors."""
    num_classes = x.shape[-1]
    anchors = torch.nonzero((positive & valid).flatten()).squeeze(1)  # (P,)
    return anchors * num_classes + gt_labels.flatten()[anchors]


class _DenseFocalLoss(torch.autograd.Function):
    """sum over valid anchors and all classes of -a_t (1 - p_t)^gamma log p_t.

    Computed as if every logit were a negative (a few passes over (B, A, K): sigmoid, pow,
    softplus), then corrected at the P target logits of the positive anchors (a gather). With
    s = sigmoid(x) and f(x) = s^g softplus(x) (the negative term, -log(1 - s) = softplus(x)):
    f'(x) = s^g [g (1 - s) softplus(x) + s]; the positive term is f(-x) and its derivative
    -f'(-x). Nothing of size (B, A, K) is kept for backward but the logits."""

    @staticmethod
    def forward(ctx, logits, gt_labels, positive, valid, alpha, gamma):
        x = logits.to(torch.promote_types(logits.dtype, torch.float32))  # float32 at least (AMP)
        a_neg, a_pos = (1.0 - alpha, alpha) if alpha >= 0 else (1.0, 1.0)
        _, s_pow, softplus = _negative_terms(x, gamma)
        per_anchor = (s_pow * softplus).sum(dim=-1)  # (B, A)
        total = a_neg * (per_anchor * valid).sum()
        index = _positive_index(x, gt_labels, positive, valid)
        x_t = x.flatten()[index]  # (P,)
        neg_t = _negative_terms(x_t, gamma)
        pos_t = _negative_terms(-x_t, gamma)
        total = total - a_neg * (neg_t[1] * neg_t[2]).sum() + a_pos * (pos_t[1] * pos_t[2]).sum()
        ctx.save_for_backward(logits, index, valid)
        ctx.alpha, ctx.gamma = (a_neg, a_pos), gamma
        return total

    @staticmethod
    def backward(ctx, grad_output):
        logits, index, valid = ctx.saved_tensors
        (a_neg, a_pos), gamma = ctx.alpha, ctx.gamma
        x = logits.to(torch.promote_types(logits.dtype, torch.float32))
        grad = _focal_derivative(x, gamma).mul_((a_neg * grad_output) * valid[..., None])  # (B, A, K)
        x_t = x.flatten()[index]
        correction = -a_neg * _focal_derivative(x_t, gamma) - a_pos * _focal_derivative(-x_t, gamma)
        grad.view(-1).index_add_(0, index, correction * grad_output)
        return grad.to(logits.dtype), None, None, None, None, None


def _focal_derivative(x: Tensor, gamma: float) -> Tensor:
    """d/dx [sigmoid(x)^g softplus(x)] = s^g (g (1 - s) softplus(x) + s)."""
    s, s_pow, softplus = _negative_terms(x, gamma)
    return s_pow * ((1 - s) * softplus * gamma + s)
