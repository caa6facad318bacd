"""NMS: a thin wrapper over torchvision.ops (DESIGN.md contract 7) and a slow reference."""
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
    never suppress each other. Returns kept indices by decreasing score."""
    return _tv_batched_nms(boxes.float(), scores.float(), groups, iou_threshold)


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
