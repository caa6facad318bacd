"""Balanced positive / negative sampling (Ren et al. 2015, Sec. 3.1.3; Girshick 2015, Sec. 2.3).

Per image, at most ``int(batch_size_per_image * positive_fraction)`` positives are drawn
uniformly at random without replacement from the positives, and negatives fill the rest up to
``batch_size_per_image`` (fewer when there are not enough):
  - RPN: 256 anchors, up to half positive (``RPN_SAMPLER``);
  - RoI head: 128 proposals, up to 25% positive (``ROI_SAMPLER``; 512 in detectron2).
The count is an integer (seed 003 used the float ``pos_ratio * n_sample`` as a count).

The batched version draws one uniform key per candidate and keeps, per image, the candidates
with the smallest keys: a uniformly random subset of the wanted size. ``sample_reference`` does
the same per image with plain indexing; given the same keys both select the same elements.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from anchordet.matching.iou_matcher import NEGATIVE, POSITIVE


class SampledMasks(NamedTuple):
    """(B, N) bool masks of the sampled positives and negatives (disjoint)."""

    positive: Tensor
    negative: Tensor

    @property
    def sampled(self) -> Tensor:
        return self.positive | self.negative


@dataclass(frozen=True)
class BalancedSampler:
    batch_size_per_image: int
    positive_fraction: float

    def __post_init__(self) -> None:
        if self.batch_size_per_image < 1:
            raise ValueError(f"batch_size_per_image must be >= 1, got {self.batch_size_per_image}")
        if not 0.0 <= self.positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must be in [0, 1], got {self.positive_fraction}")

    @property
    def max_positives(self) -> int:
        return int(self.batch_size_per_image * self.positive_fraction)

    def sample(self, labels: Tensor, generator: torch.Generator | None = None) -> SampledMasks:
        """Args:
            labels: (B, N) or (N,) in {IGNORE, NEGATIVE, POSITIVE} (the matcher's labels).
            generator: random source (a CPU generator, or one on ``labels``' device); None
                uses the global RNG.
        Returns:
            masks of ``labels``' shape.
        """
        device = labels.device if generator is None else generator.device
        keys = torch.rand(labels.shape, generator=generator, device=device).to(labels.device)
        return self.select(labels, keys)

    def select(self, labels: Tensor, keys: Tensor) -> SampledMasks:
        """The deterministic part of ``sample``: keys (same shape as labels) in [0, 1)."""
        squeeze = labels.ndim == 1
        labels, keys = (labels[None], keys[None]) if squeeze else (labels, keys)
        positive = labels == POSITIVE
        negative = labels == NEGATIVE
        num_pos = positive.sum(dim=1).clamp(max=self.max_positives)  # (B,)
        num_neg = (negative.sum(dim=1)).clamp(max=self.batch_size_per_image - num_pos)  # (B,)
        pos_mask = positive & (_rank_among(keys, positive) < num_pos[:, None])
        neg_mask = negative & (_rank_among(keys, negative) < num_neg[:, None])
        if squeeze:
            return SampledMasks(pos_mask[0], neg_mask[0])
        return SampledMasks(pos_mask, neg_mask)


def _rank_among(keys: Tensor, candidate: Tensor) -> Tensor:
    """(B, N) rank of each candidate's key among its row's candidates (non-candidates last)."""
    masked = torch.where(candidate, keys, 2.0)  # keys are < 1: non-candidates sort after
    order = masked.argsort(dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return rank


def sample_reference(sampler: BalancedSampler, labels: Tensor, keys: Tensor) -> SampledMasks:
    """Per image, plain indexing: the reference for ``BalancedSampler.select`` ((B, N) inputs)."""
    pos_masks, neg_masks = [], []
    for row_labels, row_keys in zip(labels, keys):
        pos = torch.zeros_like(row_labels, dtype=torch.bool)
        neg = torch.zeros_like(row_labels, dtype=torch.bool)
        pos_index = torch.nonzero(row_labels == POSITIVE).flatten().tolist()
        neg_index = torch.nonzero(row_labels == NEGATIVE).flatten().tolist()
        pos_index.sort(key=lambda i: float(row_keys[i]))
        neg_index.sort(key=lambda i: float(row_keys[i]))
        chosen_pos = pos_index[: sampler.max_positives]
        chosen_neg = neg_index[: sampler.batch_size_per_image - len(chosen_pos)]
        pos[chosen_pos] = True
        neg[chosen_neg] = True
        pos_masks.append(pos)
        neg_masks.append(neg)
    return SampledMasks(torch.stack(pos_masks), torch.stack(neg_masks))


# Ren et al. 2015, Sec. 3.1.3: 256 anchors per image, up to 1:1 positives.
RPN_SAMPLER = BalancedSampler(256, 0.5)
# Girshick 2015, Sec. 2.3: 25% foreground; 128 RoIs per image as seed 003 (py-faster-rcnn's
# end-to-end training, one image per mini-batch).
ROI_SAMPLER = BalancedSampler(128, 0.25)
