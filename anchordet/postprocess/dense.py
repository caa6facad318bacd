"""Post-processing of dense heads: raw per-anchor outputs -> final ``Detections`` per image.

Two scoring rules share the decode / clip / NMS tail:
  - sigmoid (RetinaNet): per level, keep scores > threshold, the top-k (anchor, class) pairs
    per level (Lin et al. 2017 Sec. 5: 0.05, 1000), then class-wise NMS (0.5) and the
    best ``max_detections``;
  - softmax (SSD): per class, keep scores > threshold, the top-k anchors per class, then
    class-wise NMS (0.45) and the best ``max_detections`` (seed 002's Detect: 0.01, 200).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from anchordet.coding.box_coder import BoxCoder
from anchordet.ops.nms import batched_nms
from anchordet.structures.boxes import clip_boxes
from anchordet.structures.targets import Detections


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
    max_detections: int = 100

    def sigmoid(self, cls_logits: Tensor, box_deltas: Tensor, anchors: Tensor,
                num_anchors_per_level: Sequence[int], image_sizes: Sequence[tuple[int, int]],
                box_coder: BoxCoder) -> list[Detections]:
        """Args:
            cls_logits: (B, A, K) logits of a sigmoid head.
            box_deltas: (B, A, 4).
            anchors: (A, 4) xyxy, levels concatenated in the order of ``num_anchors_per_level``.
            image_sizes: B (height, width) to clip to.

        Batched over the images: per level one top-k on the logits of all images (the sigmoid
        is monotonic, so it runs on the k kept logits only, and top-k then threshold keeps the
        same candidates as threshold then top-k); NMS stays per image. ``sigmoid_reference`` is
        the plain per-image version.
        """
        batch = cls_logits.shape[0]
        upper = _clip_limits(image_sizes, cls_logits.device)  # (B, 1, 4)
        boxes, scores, labels, keep = [], [], [], []
        for lvl_logits, lvl_deltas, lvl_anchors in zip(
            cls_logits.split(list(num_anchors_per_level), dim=1), box_deltas.split(list(num_anchors_per_level), dim=1),
            anchors.split(list(num_anchors_per_level)),
        ):
            num_classes = lvl_logits.shape[-1]
            flat = lvl_logits.reshape(batch, -1)  # (B, A_l * K)
            top_logits, top = flat.topk(min(self.topk_candidates, flat.shape[1]), dim=1)  # (B, k)
            top_scores = torch.sigmoid(top_logits.float())
            anchor_index = torch.div(top, num_classes, rounding_mode="floor")  # (B, k)
            deltas = lvl_deltas.gather(1, anchor_index[..., None].expand(-1, -1, 4))  # (B, k, 4)
            decoded = box_coder.decode(deltas, lvl_anchors[anchor_index])  # (B, k, 4)
            boxes.append(torch.minimum(decoded.clamp(min=0), upper))
            scores.append(top_scores)
            labels.append(top % num_classes)
            keep.append(top_scores > self.score_thresh)
        boxes, scores, labels, keep = (torch.cat(parts, dim=1) for parts in (boxes, scores, labels, keep))
        return [self._nms(boxes[i][keep[i]], scores[i][keep[i]], labels[i][keep[i]]) for i in range(batch)]

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
                image_sizes: Sequence[tuple[int, int]], box_coder: BoxCoder) -> list[Detections]:
        """Args:
            cls_logits: (B, A, K + 1) logits of a softmax head, background last (index K).
            box_deltas: (B, A, 4) class-agnostic deltas.
            anchors: (A, 4) xyxy.

        Softmax, decoding, clipping and the per-class top-k run on the whole batch at once; NMS
        per image. ``softmax_reference`` is the plain per-image version.
        """
        probs = torch.softmax(cls_logits.float(), dim=-1)[..., :-1]  # (B, A, K): drop background
        upper = _clip_limits(image_sizes, cls_logits.device)  # (B, 1, 4)
        boxes_all = torch.minimum(box_coder.decode(box_deltas, anchors).clamp(min=0), upper)  # (B, A, 4)
        k = min(self.topk_candidates, probs.shape[1])
        top_scores, top_anchor = probs.transpose(1, 2).topk(k, dim=2)  # (B, K, k) per class
        labels = torch.arange(probs.shape[2], device=probs.device)[:, None].expand(-1, k)  # (K, k)
        keep = top_scores > self.score_thresh
        return [self._nms(boxes_all[i][top_anchor[i][keep[i]]], top_scores[i][keep[i]], labels[keep[i]])
                for i in range(len(image_sizes))]

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


def _clip_limits(image_sizes: Sequence[tuple[int, int]], device) -> Tensor:
    """(B, 1, 4) upper limits (w, h, w, h) per image, for clipping (B, N, 4) xyxy boxes."""
    sizes = torch.tensor([[w, h, w, h] for h, w in image_sizes], dtype=torch.float32, device=device)
    return sizes[:, None, :]
