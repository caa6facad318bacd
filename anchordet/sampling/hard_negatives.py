"""Hard negative mining (Liu et al. 2016, Sec. 2.2 "Hard negative mining"): of the negative
default boxes of an image, keep only those with the highest classification loss, at most
``neg_pos_ratio`` (3) times as many as the image's positives.

Count per image: ``min(num_candidates, max(ceil(neg_pos_ratio * num_positives), min_negatives))``.
``ceil`` equals torchvision's ``rank < ratio * num_pos`` for any ratio. ``min_negatives``
decides images without positives: ssd.pytorch and torchvision mine none there, so a
background-only image teaches nothing; ``min_negatives = 3`` mines it as if it had one positive.

Ties between equal losses go to the lower anchor index (stable sort), so the result is
deterministic.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def num_hard_negatives(num_positives: Tensor, num_candidates: Tensor, neg_pos_ratio: float,
                       min_negatives: int) -> Tensor:
    """(B,) int64 positives and candidates per image -> (B,) int64 negatives to keep."""
    wanted = torch.ceil(num_positives.double() * neg_pos_ratio).long().clamp(min=min_negatives)
    return torch.minimum(wanted, num_candidates)


def mine_hard_negatives(negative_loss: Tensor, positive: Tensor, negative: Tensor,
                        neg_pos_ratio: float = 3.0, min_negatives: int = 3) -> Tensor:
    """Select the hardest negatives of every image of a batch at once.

    Args:
        negative_loss: (B, A) float, the classification loss each anchor would have as
            background (any score that orders negatives by hardness; not differentiated).
        positive: (B, A) bool, positive anchors (they set the count).
        negative: (B, A) bool, candidate negatives (not positive, not ignored).
        neg_pos_ratio: negatives per positive (3, Liu et al.).
        min_negatives: the least negatives per image (when it has that many candidates).
    Returns:
        (B, A) bool, True for the selected negatives (a subset of ``negative``).
    """
    if not math.isfinite(neg_pos_ratio) or neg_pos_ratio < 0 or min_negatives < 0:
        raise ValueError(f"need neg_pos_ratio >= 0 and min_negatives >= 0, got {neg_pos_ratio}, {min_negatives}")
    count = num_hard_negatives(positive.sum(dim=1), negative.sum(dim=1), neg_pos_ratio, min_negatives)  # (B,)
    scores = torch.where(negative, negative_loss.detach().float(), -math.inf)  # (B, A)
    order = scores.sort(dim=1, descending=True, stable=True).indices  # (B, A) hardest first
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < count[:, None]) & negative
