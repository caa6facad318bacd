"""Anchor coverage analysis: which ground-truth boxes can an anchor configuration learn?

A gt box is learned only through the anchors the matcher makes positive for it. This module
runs the model's own matcher (the same ``IoUMatcher`` as training) on the model's own anchors
and reports, per gt box: its best IoU with any anchor, how many anchors are positive for it,
and whether it gets positives only through the low-quality rule.

Images that share an input size share anchors, so the caller groups images by size and calls
``match_statistics`` once per image with that size's anchors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import torch
from torch import Tensor

from anchordet.matching.iou_matcher import POSITIVE, IoUMatcher
from anchordet.structures.boxes import box_area, box_iou

# COCO's object-size ranges (pycocotools areaRng): small < 32^2 <= medium < 96^2 <= large.
SIZE_RANGES = {"small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, math.inf)}


class MatchStatistics(NamedTuple):
    """Per gt box of one image (G boxes).

    Attributes:
        best_iou: (G,) the highest IoU of the box with any anchor.
        num_positive: (G,) int64 anchors POSITIVE and matched to this box (low-quality included).
        num_confident: (G,) int64 of those, the anchors with IoU >= the matcher's high threshold.
    """

    best_iou: Tensor
    num_positive: Tensor
    num_confident: Tensor


def match_statistics(anchors: Tensor, gt_boxes: Tensor, matcher: IoUMatcher) -> MatchStatistics:
    """Args: anchors (A, 4) xyxy; gt_boxes (G, 4) xyxy of one image, in the same pixel frame."""
    num_gt = gt_boxes.shape[0]
    if num_gt == 0 or anchors.shape[0] == 0:
        zeros = torch.zeros(num_gt, dtype=torch.int64)
        return MatchStatistics(torch.zeros(num_gt), zeros, zeros.clone())
    iou = box_iou(gt_boxes.to(anchors.dtype), anchors)  # (G, A)
    match = matcher.match(iou)
    positive = match.labels == POSITIVE
    matched_iou = iou.gather(0, match.gt_index[None]).squeeze(0)  # (A,) IoU with the assigned gt
    confident = positive & (matched_iou >= matcher.high_threshold)
    return MatchStatistics(
        iou.max(dim=1).values.cpu(),
        torch.bincount(match.gt_index[positive], minlength=num_gt).cpu(),
        torch.bincount(match.gt_index[confident], minlength=num_gt).cpu(),
    )


@dataclass
class CoverageReport:
    """Per gt box over a whole dataset (N boxes), with its image id, class and size.

    Attributes:
        image_ids: (N,) int64.  labels: (N,) int64 in 0..K-1.  boxes: (N, 4) xyxy in the
        frame the anchors live in (after the data pipeline's resize).  best_iou: (N,).
        num_positive / num_confident: (N,) int64, see ``MatchStatistics``.
    """

    image_ids: Tensor
    labels: Tensor
    boxes: Tensor
    best_iou: Tensor
    num_positive: Tensor
    num_confident: Tensor

    @property
    def covered(self) -> Tensor:
        """(N,) bool: at least one positive anchor (the box is learned at all)."""
        return self.num_positive > 0

    @property
    def low_quality_only(self) -> Tensor:
        """(N,) bool: positives only through the low-quality rule (IoU below the threshold)."""
        return (self.num_positive > 0) & (self.num_confident == 0)

    def size_group(self, name: str) -> Tensor:
        low, high = SIZE_RANGES[name]
        area = box_area(self.boxes)
        return (area >= low) & (area < high)

    def summary(self, mask: Tensor | None = None) -> dict[str, float]:
        """Shares and averages over the boxes selected by ``mask`` (all by default)."""
        mask = torch.ones_like(self.covered) if mask is None else mask
        n = int(mask.sum())
        if n == 0:
            return {"boxes": 0}
        positives = self.num_positive[mask].float()
        return {
            "boxes": n,
            "covered": float(self.covered[mask].float().mean()),
            "confident": float((self.num_confident[mask] > 0).float().mean()),
            "low_quality_only": float(self.low_quality_only[mask].float().mean()),
            "positives_mean": float(positives.mean()),
            "positives_median": float(positives.median()),
            "best_iou_mean": float(self.best_iou[mask].mean()),
        }

    def by_size(self) -> dict[str, dict[str, float]]:
        return {name: self.summary(self.size_group(name)) for name in SIZE_RANGES}

    def by_class(self, num_classes: int) -> list[dict[str, float]]:
        return [self.summary(self.labels == k) for k in range(num_classes)]

    def uncovered(self) -> list[dict]:
        """The boxes no anchor can learn, worst first: image id, class, box, best IoU."""
        index = torch.nonzero(~self.covered).flatten()
        index = index[torch.argsort(self.best_iou[index])]
        return [{"image_id": int(self.image_ids[i]), "label": int(self.labels[i]),
                 "box": [round(v, 2) for v in self.boxes[i].tolist()], "best_iou": float(self.best_iou[i])}
                for i in index.tolist()]

    def best_iou_histogram(self, bins: int = 20) -> tuple[Tensor, Tensor]:
        """Counts (bins,) and edges (bins + 1,) of best IoU over [0, 1]."""
        return torch.histc(self.best_iou, bins=bins, min=0.0, max=1.0), torch.linspace(0, 1, bins + 1)


class AnnotatedImage(NamedTuple):
    """One image's boxes in the model's input frame, and the input size the anchors need."""

    image_id: int
    input_size: tuple[int, int]
    boxes: Tensor
    labels: Tensor


def analyze_coverage(images: Iterable[AnnotatedImage], anchors_for_size, matcher: IoUMatcher) -> CoverageReport:
    """Run the matcher over a dataset.

    Args:
        images: the boxes of each image (already resized as the training pipeline resizes).
        anchors_for_size: ``(height, width) -> (A, 4)`` anchors the model uses for that input;
            called once per distinct size (results are cached here).
        matcher: the model's matcher.
    """
    cache: dict[tuple[int, int], Tensor] = {}
    parts: dict[str, list[Tensor]] = {k: [] for k in ("image_ids", "labels", "boxes", "best_iou", "num_positive", "num_confident")}
    for image in images:
        if image.input_size not in cache:
            cache[image.input_size] = anchors_for_size(image.input_size)
        stats = match_statistics(cache[image.input_size], image.boxes, matcher)
        parts["image_ids"].append(torch.full((len(image.labels),), image.image_id, dtype=torch.int64))
        parts["labels"].append(image.labels.to(torch.int64))
        parts["boxes"].append(image.boxes.float().reshape(-1, 4))
        parts["best_iou"].append(stats.best_iou.float())
        parts["num_positive"].append(stats.num_positive)
        parts["num_confident"].append(stats.num_confident)
    if not parts["labels"]:
        return CoverageReport(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4),
                              torch.zeros(0), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    return CoverageReport(**{k: torch.cat(v) for k, v in parts.items()})
