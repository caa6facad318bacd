"""IoU matcher: assigns each anchor (or proposal) to at most one ground-truth box.

    IoU >= high_threshold             -> POSITIVE, matched to its best gt
    low_threshold <= IoU < high       -> IGNORE (neither positive nor negative)
    IoU < low_threshold               -> NEGATIVE

Low-quality matches add positives so that a gt that reaches no anchor at ``high_threshold``
still gets one:
  - ``"ties"`` (Ren et al. 2015 Sec. 3.1.2; torchvision, detectron2): every anchor whose IoU
    with some gt equals that gt's best IoU becomes positive (keeping its own best gt).
  - ``"force"`` (Liu et al. 2016 Sec. 2.2; SSD): each gt's single best anchor becomes positive
    and is matched to that gt, even if another gt overlaps it more.
Unlike torchvision, a gt whose best IoU is 0 makes no anchor positive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

IGNORE = -1
NEGATIVE = 0
POSITIVE = 1


class MatchResult(NamedTuple):
    """Per anchor: ``gt_index`` (A,) int64, the matched gt (0 where none: check ``labels``);
    ``labels`` (A,) int8 in {IGNORE, NEGATIVE, POSITIVE}; ``max_iou`` (A,) the best IoU."""

    gt_index: Tensor
    labels: Tensor
    max_iou: Tensor


@dataclass(frozen=True)
class IoUMatcher:
    high_threshold: float
    low_threshold: float
    low_quality: Literal["none", "ties", "force"] = "none"

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_threshold <= self.high_threshold <= 1.0:
            raise ValueError(f"need 0 <= low ({self.low_threshold}) <= high ({self.high_threshold}) <= 1")
        if self.low_quality not in ("none", "ties", "force"):
            raise ValueError(f"low_quality must be 'none', 'ties' or 'force', got {self.low_quality!r}")

    def match(self, iou: Tensor) -> MatchResult:
        """Args: iou (G, A) between G gt boxes and A anchors. Returns a ``MatchResult``."""
        num_gt, num_anchors = iou.shape
        device = iou.device
        if num_gt == 0:
            return MatchResult(
                torch.zeros(num_anchors, dtype=torch.int64, device=device),
                torch.full((num_anchors,), NEGATIVE, dtype=torch.int8, device=device),
                torch.zeros(num_anchors, dtype=iou.dtype, device=device),
            )
        max_iou, gt_index = iou.max(dim=0)  # (A,), (A,)
        labels = torch.full((num_anchors,), IGNORE, dtype=torch.int8, device=device)
        labels[max_iou < self.low_threshold] = NEGATIVE
        labels[max_iou >= self.high_threshold] = POSITIVE
        if num_anchors and self.low_quality == "ties":
            best_per_gt = iou.max(dim=1, keepdim=True).values  # (G, 1)
            is_best = (iou == best_per_gt) & (best_per_gt > 0)  # (G, A)
            labels[is_best.any(dim=0)] = POSITIVE
        elif num_anchors and self.low_quality == "force":
            best_iou, best_anchor = iou.max(dim=1)  # (G,)
            reached = best_iou > 0
            # When two gts share a best anchor the later gt wins, as in ssd.pytorch's loop;
            # scatter_reduce makes that deterministic (plain index assignment is not on CUDA).
            gt_ids = torch.arange(num_gt, device=device)[reached]
            winner = torch.full((num_anchors,), -1, dtype=torch.int64, device=device)
            winner.scatter_reduce_(0, best_anchor[reached], gt_ids, reduce="amax")
            forced = winner >= 0
            gt_index = torch.where(forced, winner, gt_index)
            labels[forced] = POSITIVE
        return MatchResult(gt_index, labels, max_iou)
