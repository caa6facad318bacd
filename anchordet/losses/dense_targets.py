"""Dense target builder: one per-anchor assignment for every dense head (RetinaNet, SSD, RPN).

For each image: IoU between gt boxes and anchors -> ``IoUMatcher`` -> per-anchor class label and
box regression target. Two extra rules:
  - ``ignore_regions``: anchors that overlap an ignore region (COCO crowd, VOC difficult) by
    IoU >= the matcher's low threshold and are not positive become IGNORE (the RoI targets
    use the same rule);
  - ``allowed_border`` (the border rule): anchors reaching further than this outside the image
    are IGNORE and never matched, so each gt's best (low-quality) matches are its best *inside*
    anchors (Ren et al. 2015 Sec. 3.3 and seed 003, for the RPN). None: every anchor takes part.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from anchordet.anchors.grid import anchors_inside
from anchordet.coding.box_coder import BoxCoder
from anchordet.matching.iou_matcher import IGNORE, NEGATIVE, POSITIVE, IoUMatcher
from anchordet.structures.boxes import box_iou
from anchordet.structures.targets import Targets


class DenseTargets(NamedTuple):
    """Per anchor, for a batch of B images and A anchors.

    Attributes:
        match_labels: (B, A) int8 in {IGNORE, NEGATIVE, POSITIVE}.
        gt_labels: (B, A) int64 class 0..K-1 of the matched gt (0 where not POSITIVE).
        box_targets: (B, A, 4) float32 encoded deltas (0 where not POSITIVE).
        matched_boxes: (B, A, 4) float32 xyxy matched gt box (0 where not POSITIVE).
        max_iou: (B, A) best IoU of each anchor with a trainable gt.
    """

    match_labels: Tensor
    gt_labels: Tensor
    box_targets: Tensor
    matched_boxes: Tensor
    max_iou: Tensor

    @property
    def positive(self) -> Tensor:
        return self.match_labels == POSITIVE

    @property
    def valid(self) -> Tensor:
        """(B, A) bool: anchors that take part in the classification loss."""
        return self.match_labels != IGNORE

    @property
    def num_positives(self) -> Tensor:
        return self.positive.sum()


def ignore_regions(labels: Tensor, candidates: Tensor, targets: Targets, threshold: float) -> Tensor:
    """Labels (N,) int8 with the candidates (N, 4) that are not POSITIVE and overlap one of
    ``targets``' ignore regions by IoU >= ``threshold`` set to IGNORE (a new tensor)."""
    labels = labels.clone()
    if bool(targets.ignore.any()):
        iou_ignore = box_iou(targets.ignored_boxes.to(candidates), candidates).amax(dim=0)  # (N,)
        labels[(labels != POSITIVE) & (iou_ignore >= threshold)] = IGNORE
    return labels


@dataclass(frozen=True)
class DenseTargetBuilder:
    """Attributes:
        matcher: the IoU thresholds and low-quality rule.
        box_coder: encodes each positive's matched gt box.
        allowed_border: the border rule (module docstring); None: every anchor takes part.
    """

    matcher: IoUMatcher
    box_coder: BoxCoder
    allowed_border: float | None = None

    def build(self, anchors: Tensor, targets: Sequence[Targets],
              image_sizes: Sequence[tuple[int, int]] | None = None) -> DenseTargets:
        """Args:
            anchors: (A, 4) xyxy, shared by every image of the batch.
            targets: B ``Targets``.
            image_sizes: B (height, width), needed when ``allowed_border`` is set.
        """
        if self.allowed_border is not None and image_sizes is None:
            raise ValueError("allowed_border needs image_sizes")
        per_image = [
            self.build_per_image(anchors, t, None if image_sizes is None else image_sizes[i])
            for i, t in enumerate(targets)
        ]
        return DenseTargets(*(torch.stack(parts) for parts in zip(*per_image)))

    def build_per_image(self, anchors: Tensor, targets: Targets,
                        image_size: tuple[int, int] | None = None) -> DenseTargets:
        """The plain per-image version: the reference for any batched one. Fields without B."""
        if self.allowed_border is None:
            return self._match(anchors, targets)
        inside = anchors_inside(anchors, image_size, self.allowed_border)  # (A,)
        part = self._match(anchors[inside], targets)
        full = DenseTargets(  # outside anchors: IGNORE, zero targets
            torch.full((len(anchors),), IGNORE, dtype=part.match_labels.dtype, device=anchors.device),
            part.gt_labels.new_zeros(len(anchors)), part.box_targets.new_zeros((len(anchors), 4)),
            part.matched_boxes.new_zeros((len(anchors), 4)), part.max_iou.new_zeros(len(anchors)))
        for whole, piece in zip(full, part):
            whole[inside] = piece
        return full

    def _match(self, anchors: Tensor, targets: Targets) -> DenseTargets:
        """Every anchor of ``anchors`` (A, 4) takes part: match, ignore regions, encode."""
        num_anchors = anchors.shape[0]
        trainable = targets.trainable
        gt_boxes = trainable.boxes.to(anchors.dtype)
        iou = box_iou(gt_boxes, anchors)  # (G, A)
        match = self.matcher.match(iou)
        labels = ignore_regions(match.labels, anchors, targets, self.matcher.low_threshold)
        positive = labels == POSITIVE
        if len(trainable):
            matched_boxes = gt_boxes[match.gt_index]  # (A, 4)
            gt_labels = trainable.labels[match.gt_index]
        else:
            matched_boxes = anchors.new_zeros((num_anchors, 4))
            gt_labels = torch.zeros(num_anchors, dtype=torch.int64, device=anchors.device)
        matched_boxes = torch.where(positive[:, None], matched_boxes, 0.0).float()
        gt_labels = torch.where(positive, gt_labels, 0)
        box_targets = anchors.new_zeros((num_anchors, 4), dtype=torch.float32)
        if bool(positive.any()):
            box_targets[positive] = self.box_coder.encode(matched_boxes[positive], anchors[positive])
        return DenseTargets(labels, gt_labels, box_targets, matched_boxes, match.max_iou)


__all__ = ["DenseTargets", "DenseTargetBuilder", "IGNORE", "NEGATIVE", "POSITIVE", "ignore_regions"]
