"""Fast R-CNN proposal targets (Girshick 2015 Sec. 2.3; seed 003): which proposals train the RoI
head as which class, and towards which box. ``RoITargetBuilder`` is a block (raw tensors in,
``RoITargets`` out); ``FasterRCNN.loss`` calls it between the RPN and the RoI head.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from anchordet.coding.box_coder import ROI_BOX_CODER, BoxCoder
from anchordet.losses.dense_targets import ignore_regions
from anchordet.matching.iou_matcher import IGNORE, NEGATIVE, IoUMatcher
from anchordet.sampling.balanced import ROI_SAMPLER, BalancedSampler
from anchordet.structures.boxes import box_iou
from anchordet.structures.targets import Targets


class RoITargets(NamedTuple):
    """The sampled RoIs of a batch, S in all.

    Attributes:
        proposals: per image (S_i, 4) xyxy sampled proposals (gt boxes may be among them).
        labels: (S,) int64, 0..K-1 for positives, K (background) for negatives.
        box_targets: (S, 4) deltas of the matched gt (weights 10, 10, 5, 5); 0 for negatives.
    """

    proposals: list[Tensor]
    labels: Tensor
    box_targets: Tensor


@dataclass(frozen=True)
class RoITargetBuilder:
    """Proposal targets (Girshick 2015 Sec. 2.3; seed 003): the gt boxes are added to the
    proposals (so early in training every gt has a positive; seed 003 forgot this), each is
    matched to its best gt (IoU >= 0.5 foreground, [bg_iou_low, 0.5) background), then 128 are
    sampled per image with up to 25% foreground.

    Attributes:
        matcher: IoUMatcher(fg, bg_high); no low-quality matches.
        bg_iou_low: proposals under this IoU are not used as background (0.0; 0.1 in Fast R-CNN).
        sampler: per-image sample size and positive fraction.
        box_coder: weights (10, 10, 5, 5).
        add_gt_boxes: append the gt boxes to each image's proposals.
    """

    matcher: IoUMatcher = IoUMatcher(0.5, 0.5)
    bg_iou_low: float = 0.0
    sampler: BalancedSampler = ROI_SAMPLER
    box_coder: BoxCoder = ROI_BOX_CODER
    add_gt_boxes: bool = True

    def _label(self, proposals: Tensor, targets: Targets):
        """One image: candidates (N, 4), match labels (N,) int8, gt index (N,)."""
        trainable = targets.trainable
        candidates = torch.cat([proposals.detach(), trainable.boxes.to(proposals)]) if self.add_gt_boxes else proposals
        match = self.matcher.match(box_iou(trainable.boxes.to(proposals), candidates))
        labels = match.labels.clone()
        labels[(labels == NEGATIVE) & (match.max_iou < self.bg_iou_low)] = IGNORE
        # crowd / difficult regions: neither fg nor bg
        labels = ignore_regions(labels, candidates, targets, self.matcher.low_threshold)
        return candidates, labels, match.gt_index

    def build(self, proposals: Sequence[Tensor], targets: Sequence[Targets], num_classes: int,
              generator: torch.Generator | None = None) -> RoITargets:
        """Args: per image proposals (R_i, 4) and Targets; K = num_classes."""
        labelled = [self._label(p, t) for p, t in zip(proposals, targets)]
        width = max(len(c) for c, _, _ in labelled)
        padded = torch.full((len(labelled), width), IGNORE, dtype=torch.int8, device=proposals[0].device)
        for row, (_, labels, _) in zip(padded, labelled):
            row[: len(labels)] = labels
        masks = self.sampler.sample(padded, generator)  # (B, N_max), one draw for the batch
        sampled_boxes, classes, deltas = [], [], []
        for (candidates, _, gt_index), t, pos, neg in zip(labelled, targets, masks.positive, masks.negative):
            pos, neg = pos[: len(candidates)], neg[: len(candidates)]
            trainable = t.trainable.to(candidates.device)
            pos_boxes = candidates[pos]
            sampled_boxes.append(torch.cat([pos_boxes, candidates[neg]]))
            classes.append(torch.cat([trainable.labels[gt_index[pos]],
                                      torch.full((int(neg.sum()),), num_classes, dtype=torch.int64,
                                                 device=candidates.device)]))
            gt_deltas = self.box_coder.encode(trainable.boxes[gt_index[pos]].to(pos_boxes), pos_boxes)
            deltas.append(torch.cat([gt_deltas, gt_deltas.new_zeros((int(neg.sum()), 4))]))
        return RoITargets(sampled_boxes, torch.cat(classes), torch.cat(deltas))
