"""Post-processing of dense heads: raw per-anchor outputs -> final detections of a batch.

Two scoring rules share the decode / clip / NMS tail; the detector says which is its own
(``score_kind``, a field of RetinaNet and SSD):
  - "sigmoid" (RetinaNet): per level, keep scores > threshold, the top-k (anchor, class) pairs
    per level (Lin et al. 2017 Sec. 5: 0.05, 1000), then class-wise NMS (0.5) and the
    best ``max_detections``;
  - "softmax" (SSD): per class, keep scores > threshold, the top-k anchors per class, then
    class-wise NMS (0.45) and the best ``max_detections`` (seed 002's Detect: 0.01, 200).

One implementation for ``predict`` and export: the whole batch in tensor ops whose shapes follow
the inputs (top-k counts via ``_topk_min``, per-level splits from the outputs' own sizes, image
sizes as a tensor, NMS groups image * K + class), so tracing it gives the exported graph and
running it eagerly gives ``predict``'s detections (``FlatDetections.per_image``).
``sigmoid_reference`` / ``softmax_reference`` are the plain per-image versions the tests compare
against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor
from torchvision.models.detection._utils import _topk_min

from anchordet.coding.box_coder import BoxCoder
from anchordet.ops.nms import batched_nms
from anchordet.postprocess.select import image_sizes_tensor, nms_best_per_image
from anchordet.structures.boxes import clip_boxes, clip_boxes_to_sizes
from anchordet.structures.outputs import DenseOutputs, FlatDetections
from anchordet.structures.targets import Detections

SCORE_KINDS = ("sigmoid", "softmax")


@dataclass(frozen=True)
class DensePostprocess:
    """Attributes:
    score_thresh: candidates need a score above this.
    topk_candidates: per level (sigmoid) or per class (softmax), before NMS.
    nms_thresh: IoU above which a lower-scoring box of the same class is dropped.
    max_detections: per image, after NMS.
    """

    score_thresh: float = 0.05
    topk_candidates: int = 1000
    nms_thresh: float = 0.5
    max_detections: int = 300

    def __call__(self, outputs: DenseOutputs, image_sizes: Tensor | Sequence[tuple[int, int]], box_coder: BoxCoder,
                 score_kind: str) -> FlatDetections:
        """``forward``'s outputs -> the batch's detections, by the detector's ``score_kind``
        ("sigmoid" or "softmax"). ``image_sizes``: (B, 2) (height, width) of each image before
        padding (a tensor, or B pairs), the clipping limits."""
        if score_kind == "sigmoid":
            return self.sigmoid(outputs.cls_logits, outputs.box_deltas, outputs.anchors, outputs.num_anchors_per_level,
                                image_sizes, box_coder)
        if score_kind == "softmax":
            return self.softmax(outputs.cls_logits, outputs.box_deltas, outputs.anchors, image_sizes, box_coder)
        raise ValueError(f"score_kind must be one of {SCORE_KINDS}, got {score_kind!r}")

    def sigmoid(self, cls_logits: Tensor, box_deltas: Tensor, anchors: Tensor,
                num_anchors_per_level: Sequence[int], image_sizes: Tensor | Sequence[tuple[int, int]],
                box_coder: BoxCoder) -> FlatDetections:
        """Args:
            cls_logits: (B, A, K) logits of a sigmoid head.
            box_deltas: (B, A, 4).
            anchors: (A, 4) xyxy, levels concatenated in the order of ``num_anchors_per_level``.
            image_sizes: (B, 2) (height, width) to clip to.

        Per level one top-k on the logits of all images (the sigmoid is monotonic, so it runs on
        the k kept logits only, and top-k then threshold keeps the same candidates as threshold
        then top-k, which ``sigmoid_reference`` does).
        """
        sizes = image_sizes_tensor(image_sizes, cls_logits.device)
        counts = list(num_anchors_per_level)  # traced from the outputs' sizes, so dynamic when exported
        boxes, scores, labels = [], [], []
        for lvl_logits, lvl_deltas, lvl_anchors in zip(cls_logits.split(counts, dim=1), box_deltas.split(counts, dim=1),
                                                       anchors.split(counts)):
            num_classes = lvl_logits.shape[-1]
            flat = lvl_logits.flatten(1)  # (B, A_l * K)
            top_logits, top = flat.topk(_topk_min(flat, self.topk_candidates, 1), dim=1)  # (B, k)
            anchor_index = torch.div(top, num_classes, rounding_mode="floor")  # (B, k)
            deltas = lvl_deltas.gather(1, anchor_index[..., None].expand(-1, -1, 4))  # (B, k, 4)
            boxes.append(box_coder.decode(deltas, lvl_anchors[anchor_index]))  # (B, k, 4)
            scores.append(torch.sigmoid(top_logits.float()))
            labels.append(top % num_classes)
        boxes = clip_boxes_to_sizes(torch.cat(boxes, dim=1), sizes[:, None])
        return self._select(boxes, torch.cat(scores, dim=1), torch.cat(labels, dim=1), cls_logits.shape[-1])

    def sigmoid_reference(self, cls_logits: Tensor, box_deltas: Tensor, anchors: Tensor,
                          num_anchors_per_level: Sequence[int], image_sizes: Sequence[tuple[int, int]],
                          box_coder: BoxCoder) -> list[Detections]:
        """The plain per-image, per-level version of ``sigmoid`` (threshold, then top-k)."""
        results = []
        for logits, deltas, size in zip(cls_logits, box_deltas, image_sizes):
            boxes, scores, labels = [], [], []
            for lvl_logits, lvl_deltas, lvl_anchors in zip(
                logits.split(list(num_anchors_per_level)), deltas.split(list(num_anchors_per_level)),
                anchors.split(list(num_anchors_per_level)),
            ):
                lvl_boxes, lvl_scores, lvl_labels = self._sigmoid_level(lvl_logits, lvl_deltas, lvl_anchors, box_coder)
                boxes.append(clip_boxes(lvl_boxes, size))
                scores.append(lvl_scores)
                labels.append(lvl_labels)
            results.append(self._nms(torch.cat(boxes), torch.cat(scores), torch.cat(labels)))
        return results

    def _sigmoid_level(self, logits: Tensor, deltas: Tensor, anchors: Tensor, box_coder: BoxCoder):
        num_classes = logits.shape[-1]
        scores = torch.sigmoid(logits.float()).flatten()  # (A_l * K,)
        candidate = torch.where(scores > self.score_thresh)[0]
        top_scores, order = scores[candidate].topk(min(self.topk_candidates, candidate.numel()))
        top = candidate[order]
        anchor_index = torch.div(top, num_classes, rounding_mode="floor")
        labels = top % num_classes
        boxes = box_coder.decode(deltas[anchor_index], anchors[anchor_index])
        return boxes, top_scores, labels

    def softmax(self, cls_logits: Tensor, box_deltas: Tensor, anchors: Tensor,
                image_sizes: Tensor | Sequence[tuple[int, int]], box_coder: BoxCoder) -> FlatDetections:
        """Args:
            cls_logits: (B, A, K + 1) logits of a softmax head, background last (index K).
            box_deltas: (B, A, 4) class-agnostic deltas.
            anchors: (A, 4) xyxy.
            image_sizes: (B, 2) (height, width) to clip to.

        Softmax, decoding and clipping of every anchor, then per class the top-k anchors.
        """
        sizes = image_sizes_tensor(image_sizes, cls_logits.device)
        probs = torch.softmax(cls_logits.float(), dim=-1)[..., :-1]  # (B, A, K): drop background
        boxes_all = clip_boxes_to_sizes(box_coder.decode(box_deltas, anchors), sizes[:, None])  # (B, A, 4)
        top_scores, top_anchor = probs.transpose(1, 2).topk(_topk_min(probs, self.topk_candidates, 1), dim=2)  # (B, K, k)
        num_classes = probs.shape[-1]
        boxes = boxes_all.gather(1, top_anchor.flatten(1)[..., None].expand(-1, -1, 4))  # (B, K * k, 4)
        labels = torch.arange(num_classes, device=probs.device)[None, :, None].expand_as(top_anchor)
        return self._select(boxes, top_scores.flatten(1), labels.flatten(1), num_classes)

    def _select(self, boxes: Tensor, scores: Tensor, labels: Tensor, num_classes: int) -> FlatDetections:
        """(B, N, 4), (B, N), (B, N) candidates -> score > threshold, class-wise NMS within each
        image, the best ``max_detections`` of each image."""
        num_images = boxes.shape[0]
        batch_index = torch.arange(num_images, device=boxes.device)[:, None].expand_as(labels)
        keep = scores.flatten() > self.score_thresh
        boxes, scores = boxes.reshape(-1, 4)[keep], scores.flatten()[keep]
        labels, batch_index = labels.flatten()[keep], batch_index.flatten()[keep]
        kept = nms_best_per_image(boxes, scores, batch_index * num_classes + labels, batch_index, num_images,
                                  self.nms_thresh, self.max_detections)
        return FlatDetections(boxes[kept], scores[kept], labels[kept], batch_index[kept])

    def softmax_reference(self, cls_logits: Tensor, box_deltas: Tensor, anchors: Tensor,
                          image_sizes: Sequence[tuple[int, int]], box_coder: BoxCoder) -> list[Detections]:
        """The plain per-image version of ``softmax``."""
        results = []
        for logits, deltas, size in zip(cls_logits, box_deltas, image_sizes):
            probs = torch.softmax(logits.float(), dim=-1)[:, :-1]  # (A, K): drop background
            boxes_all = clip_boxes(box_coder.decode(deltas, anchors), size)  # (A, 4)
            k = min(self.topk_candidates, probs.shape[0])
            top_scores, top_anchor = probs.t().topk(k, dim=1)  # (K, k) per class
            labels = torch.arange(probs.shape[1], device=probs.device)[:, None].expand_as(top_anchor)
            keep = top_scores > self.score_thresh
            results.append(self._nms(boxes_all[top_anchor[keep]], top_scores[keep], labels[keep]))
        return results

    def _nms(self, boxes: Tensor, scores: Tensor, labels: Tensor) -> Detections:
        keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.max_detections]
        return Detections(boxes[keep], scores[keep], labels[keep])

