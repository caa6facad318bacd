"""Box conversions and geometry.

Every box in anchordet is an ``(N, 4)`` float tensor in absolute pixels, ``x1, y1, x2, y2``
(docs/design.md, contract 2). Functions here that take or return another format say so in their
name (``cxcywh``, ``xywh``).
"""
from __future__ import annotations

import torch
from torch import Tensor


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(..., 4) x1, y1, x2, y2 -> (..., 4) cx, cy, w, h."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_cxcywh_to_xyxy(boxes_cxcywh: Tensor) -> Tensor:
    """(..., 4) cx, cy, w, h -> (..., 4) x1, y1, x2, y2."""
    cx, cy, w, h = boxes_cxcywh.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def box_xywh_to_xyxy(bbox_xywh: Tensor) -> Tensor:
    """(..., 4) COCO x, y, w, h -> (..., 4) x1, y1, x2, y2."""
    x, y, w, h = bbox_xywh.unbind(-1)
    return torch.stack((x, y, x + w, y + h), dim=-1)


def box_xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """(..., 4) x1, y1, x2, y2 -> (..., 4) COCO x, y, w, h."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """(N, 4) xyxy -> (N,) area; degenerate boxes (x2 < x1 or y2 < y1) have area 0."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def _intersection(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """(N, 4), (M, 4) xyxy -> (N, M) intersection areas."""
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union.

    Args:
        boxes1: (N, 4) xyxy.
        boxes2: (M, 4) xyxy.
    Returns:
        (N, M) IoU in [0, 1]. A pair whose union is 0 (two empty boxes) has IoU 0, not NaN.
    """
    inter = _intersection(boxes1, boxes2)
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), 0.0)


def box_ioa(boxes1: Tensor, regions: Tensor) -> Tensor:
    """Intersection over the area of ``boxes1`` (how much of each box lies inside each region).

    Used for crowd / ignore regions, as COCO does. Returns (N, M); 0 where a box has no area.
    """
    inter = _intersection(boxes1, regions)
    area = box_area(boxes1)[:, None]
    return torch.where(area > 0, inter / area.clamp(min=torch.finfo(inter.dtype).tiny), 0.0)


def clip_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Clip (..., 4) xyxy boxes to an image of size ``(height, width)``."""
    height, width = image_size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def clip_boxes_to_sizes(boxes: Tensor, image_sizes: Tensor) -> Tensor:
    """Clip xyxy boxes, each to its own image's size, with the sizes as a tensor.

    Args:
        boxes: (..., 4) xyxy, e.g. (B, N, 4) for a batch or (R, 4) for flat proposals.
        image_sizes: (..., 2) (height, width) per box, broadcastable against ``boxes[..., :2]``:
            (B, 1, 2) for (B, N, 4) boxes, or (R, 2) with each flat box's image size.
    Returns:
        boxes of the same shape, x in [0, width] and y in [0, height].

    Equal to ``clip_boxes`` per image; the sizes are a tensor rather than Python ints, so a
    traced / exported graph keeps them as an input instead of freezing the traced example's
    (and one call clips a whole padded batch).
    """
    limits = image_sizes.to(boxes.dtype)[..., [1, 0, 1, 0]]  # (..., 4): width, height, width, height
    return torch.minimum(boxes.clamp(min=0), limits)


def nonempty_mask(boxes: Tensor, min_size: float = 0.0) -> Tensor:
    """(N, 4) -> (N,) bool: True where width > min_size and height > min_size."""
    return ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)
