"""NMS: a thin wrapper over torchvision.ops (docs/design.md contract 7) and a slow reference."""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms as _tv_batched_nms
from torchvision.ops import nms as _tv_nms

from anchordet.structures.boxes import box_iou


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """(N, 4) xyxy, (N,) -> int64 indices of the kept boxes, by decreasing score."""
    return _tv_nms(boxes.float(), scores.float(), iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group (class, or image * classes + class): boxes of different groups
    never suppress each other. Returns kept indices by decreasing score.

    torchvision keeps groups apart by shifting each group's boxes by group * (largest
    coordinate + 1). With images * classes groups (a batch of 16 at 1333 px with 80 classes:
    offsets up to 1.7e6) float32 would round every shifted coordinate by up to 0.125 px and
    move IoUs by a percent; eagerly the boxes go in as float64 (exact for any such offset).
    Traced (export) they stay float32: ONNX ``NonMaxSuppression`` takes float32 only (and so
    on Apple's MPS, which has no float64).
    """
    dtype = torch.float32 if torch.jit.is_tracing() or boxes.device.type == "mps" else torch.float64
    return _tv_batched_nms(boxes.to(dtype), scores.to(dtype), groups, iou_threshold)


def nms_reference(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS in plain torch, O(N^2): the slow reference the tests compare against.
    A box is suppressed by a kept higher-scoring box when their IoU is > iou_threshold."""
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(int(order[i]))
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)
