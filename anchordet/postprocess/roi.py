"""Post-processing of the Fast R-CNN stage (Girshick 2015, Sec. 2.4 and 3):
softmax scores, class-specific decoding of each proposal, clip to the image, score threshold,
NMS per class, the best ``max_detections`` per image.

Vectorized over the batch in tensor ops (``RoIPostprocess.flat``, which export traces): one
``batched_nms`` call whose groups are (image, class) pairs. ``RoIPostprocess.reference`` is the
plain per-image, per-class loop the tests compare against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from anchordet.coding.box_coder import ROI_BOX_CODER, BoxCoder
from anchordet.ops.nms import nms_reference
from anchordet.postprocess.select import image_sizes_tensor, nms_best_per_image
from anchordet.structures.boxes import clip_boxes, clip_boxes_to_sizes
from anchordet.structures.outputs import FlatDetections
from anchordet.structures.targets import Detections


@dataclass(frozen=True)
class RoIPostprocess:
    """Attributes:
    score_thresh: keep (box, class) pairs with a softmax score above this (0.05, torchvision
        and detectron2; py-faster-rcnn's VOC evaluation used 0.0).
    nms_thresh: IoU above which a lower-scoring box of the same class is dropped (0.5,
        torchvision and detectron2; py-faster-rcnn used 0.3).
    max_detections: per image (300: dense scenes of a large image hold hundreds of objects).
    min_size: boxes narrower or lower than this after clipping are dropped (torchvision: 0.01).
    """

    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    max_detections: int = 300
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
        batch_index = torch.cat([torch.full((len(p),), i, dtype=torch.int64, device=class_logits.device)
                                 for i, p in enumerate(proposals_per_image)])
        proposals = torch.cat(list(proposals_per_image)).reshape(-1, 4)
        return self.flat(class_logits, box_deltas, proposals, batch_index, image_sizes,
                         box_coder).per_image(len(proposals_per_image))

    def flat(self, class_logits: Tensor, box_deltas: Tensor, proposals: Tensor, batch_index: Tensor,
             image_sizes: Tensor | Sequence[tuple[int, int]], box_coder: BoxCoder = ROI_BOX_CODER) -> FlatDetections:
        """``__call__`` for the whole batch in tensor ops (traceable): one ``batched_nms`` call
        whose groups are (image, class) pairs.

        Args:
            class_logits: (R, K + 1); box_deltas: (R, (K + 1) * 4).
            proposals: (R, 4) xyxy; batch_index: (R,) int64 the image of each.
            image_sizes: (B, 2) (height, width) per image (a tensor, or B pairs).
        """
        sizes = image_sizes_tensor(image_sizes, class_logits.device)
        num_classes = class_logits.shape[1] - 1
        scores = torch.softmax(class_logits.float(), dim=-1)[:, :-1]  # (R, K): drop background
        deltas = box_deltas.reshape(-1, num_classes + 1, 4)[:, :-1]  # (R, K, 4)
        boxes = clip_boxes_to_sizes(box_coder.decode(deltas, proposals[:, None, :]), sizes[batch_index][:, None])
        labels = torch.arange(num_classes, device=scores.device)[None].expand_as(scores)  # (R, K)
        images = batch_index[:, None].expand_as(scores)
        boxes, scores, labels, images = boxes.reshape(-1, 4), scores.flatten(), labels.flatten(), images.flatten()
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = (scores > self.score_thresh) & (widths >= self.min_size) & (heights >= self.min_size)
        boxes, scores, labels, images = boxes[keep], scores[keep], labels[keep], images[keep]
        kept = nms_best_per_image(boxes, scores, images * num_classes + labels, images, sizes.shape[0],
                                  self.nms_thresh, self.max_detections)
        return FlatDetections(boxes[kept], scores[kept], labels[kept], images[kept])

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
