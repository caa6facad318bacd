"""Post-processing of the Fast R-CNN stage (Girshick 2015, Sec. 2.4 and 3):
softmax scores, class-specific decoding of each proposal, clip to the image, score threshold,
NMS per class, the best ``max_detections`` per image.

Vectorized over the batch: one ``batched_nms`` call whose groups are (image, class) pairs.
``RoIPostprocess.reference`` is the plain per-image, per-class loop the tests compare against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from anchordet.coding.box_coder import ROI_BOX_CODER, BoxCoder
from anchordet.ops.nms import batched_nms, nms_reference
from anchordet.structures.boxes import clip_boxes
from anchordet.structures.targets import Detections


@dataclass(frozen=True)
class RoIPostprocess:
    """Attributes:
    score_thresh: keep (box, class) pairs with a softmax score above this (0.05, torchvision
        and detectron2; py-faster-rcnn's VOC evaluation used 0.0).
    nms_thresh: IoU above which a lower-scoring box of the same class is dropped (0.5,
        torchvision and detectron2; py-faster-rcnn used 0.3).
    max_detections: per image (100).
    min_size: boxes narrower or lower than this after clipping are dropped (torchvision: 0.01).
    """

    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    max_detections: int = 100
    min_size: float = 1e-2

    def candidates(self, class_logits: Tensor, box_deltas: Tensor, proposals: Tensor,
                   image_size: tuple[int, int], box_coder: BoxCoder) -> tuple[Tensor, Tensor, Tensor]:
        """Scored, decoded and thresholded (box, class) pairs of one image before NMS.

        Args:
            class_logits: (R, K + 1), background last.
            box_deltas: (R, (K + 1) * 4) class-specific deltas.
            proposals: (R, 4) xyxy in image pixels.
        Returns:
            boxes (M, 4), scores (M,), labels (M,) int64 in 0..K-1.
        """
        num_rois, num_logits = class_logits.shape
        num_classes = num_logits - 1
        scores = torch.softmax(class_logits.float(), dim=-1)[:, :num_classes]  # (R, K)
        deltas = box_deltas.reshape(num_rois, num_logits, 4)[:, :num_classes]  # (R, K, 4)
        boxes = clip_boxes(box_coder.decode(deltas, proposals[:, None, :]), image_size)  # (R, K, 4)
        labels = torch.arange(num_classes, device=scores.device).expand(num_rois, num_classes)
        boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = (scores > self.score_thresh) & (widths >= self.min_size) & (heights >= self.min_size)
        return boxes[keep], scores[keep], labels[keep]

    def __call__(self, class_logits: Tensor, box_deltas: Tensor, proposals_per_image: Sequence[Tensor],
                 image_sizes: Sequence[tuple[int, int]], box_coder: BoxCoder = ROI_BOX_CODER) -> list[Detections]:
        """Args:
            class_logits: (R, K + 1) for all images' proposals, concatenated in image order.
            box_deltas: (R, (K + 1) * 4).
            proposals_per_image: B tensors (R_i, 4), sum R_i = R.
            image_sizes: B (height, width) to clip to.
        Returns:
            B ``Detections``, scores decreasing.
        """
        counts = [len(p) for p in proposals_per_image]
        parts = [self.candidates(logits, deltas, proposals, size, box_coder) for logits, deltas, proposals, size
                 in zip(class_logits.split(counts), box_deltas.split(counts), proposals_per_image, image_sizes)]
        num_classes = class_logits.shape[1] - 1
        image_index = torch.cat([torch.full_like(labels, i) for i, (_, _, labels) in enumerate(parts)])
        boxes = torch.cat([p[0] for p in parts])
        scores = torch.cat([p[1] for p in parts])
        labels = torch.cat([p[2] for p in parts])
        keep = batched_nms(boxes, scores, image_index * num_classes + labels, self.nms_thresh)
        results = []
        for i in range(len(parts)):
            mine = keep[image_index[keep] == i][: self.max_detections]  # keep is score-sorted
            results.append(Detections(boxes[mine], scores[mine], labels[mine]))
        return results

    def reference(self, class_logits: Tensor, box_deltas: Tensor, proposals_per_image: Sequence[Tensor],
                  image_sizes: Sequence[tuple[int, int]], box_coder: BoxCoder = ROI_BOX_CODER) -> list[Detections]:
        """Plain per-image, per-class version of ``__call__`` (slow reference NMS)."""
        counts = [len(p) for p in proposals_per_image]
        results = []
        for logits, deltas, proposals, size in zip(class_logits.split(counts), box_deltas.split(counts),
                                                   proposals_per_image, image_sizes):
            boxes, scores, labels = self.candidates(logits, deltas, proposals, size, box_coder)
            kept = []
            for c in labels.unique().tolist():
                index = torch.nonzero(labels == c).flatten()
                kept.append(index[nms_reference(boxes[index], scores[index], self.nms_thresh)])
            kept = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.int64)
            kept = kept[scores[kept].argsort(descending=True, stable=True)][: self.max_detections]
            results.append(Detections(boxes[kept], scores[kept], labels[kept]))
        return results
