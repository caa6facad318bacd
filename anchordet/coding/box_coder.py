"""Box coder: boxes <-> regression deltas relative to reference boxes (anchors, proposals).

Deltas (Girshick et al. 2014, Appendix C), for a reference box (x_a, y_a, w_a, h_a) in centre
form and a box (x, y, w, h):

    dx = wx * (x - x_a) / w_a    dy = wy * (y - y_a) / h_a
    dw = ww * log(w / w_a)       dh = wh * log(h / h_a)

SSD's "variances" 0.1 / 0.2 are the same thing as weights (1/0.1, 1/0.1, 1/0.2, 1/0.2) =
(10, 10, 5, 5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# Caps dw/dh before exp() so one bad prediction cannot overflow: a box at most 1000/16 = 62.5
# times its anchor (Detectron's BBOX_XFORM_CLIP, also torchvision's).
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


@dataclass(frozen=True)
class BoxCoder:
    """Attributes:
    weights: (wx, wy, ww, wh): (1, 1, 1, 1) for RetinaNet and the RPN, (10, 10, 5, 5) for SSD and
        the Fast R-CNN head.
    scale_clamp: the largest dw / dh passed to exp() when decoding.
    """

    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    scale_clamp: float = DEFAULT_SCALE_CLAMP

    def encode(self, boxes: Tensor, reference_boxes: Tensor) -> Tensor:
        """(..., 4) xyxy boxes and (..., 4) xyxy reference boxes -> (..., 4) deltas (float32).

        Reference boxes must have positive width and height.
        """
        boxes = boxes.float()
        reference_boxes = reference_boxes.float()
        wx, wy, ww, wh = self.weights
        ref_w = reference_boxes[..., 2] - reference_boxes[..., 0]
        ref_h = reference_boxes[..., 3] - reference_boxes[..., 1]
        ref_cx = reference_boxes[..., 0] + 0.5 * ref_w
        ref_cy = reference_boxes[..., 1] + 0.5 * ref_h
        w = boxes[..., 2] - boxes[..., 0]
        h = boxes[..., 3] - boxes[..., 1]
        cx = boxes[..., 0] + 0.5 * w
        cy = boxes[..., 1] + 0.5 * h
        return torch.stack((
            wx * (cx - ref_cx) / ref_w,
            wy * (cy - ref_cy) / ref_h,
            ww * torch.log(w / ref_w),
            wh * torch.log(h / ref_h),
        ), dim=-1)

    def decode(self, deltas: Tensor, reference_boxes: Tensor) -> Tensor:
        """(..., 4) deltas and (..., 4) xyxy reference boxes (broadcastable) -> (..., 4) xyxy.

        Computed in float32 (or wider) even under autocast: exp() of half-precision deltas loses
        whole pixels.
        """
        dtype = torch.promote_types(deltas.dtype, torch.float32)
        deltas = deltas.to(dtype)
        reference_boxes = reference_boxes.to(dtype)
        wx, wy, ww, wh = self.weights
        ref_w = reference_boxes[..., 2] - reference_boxes[..., 0]
        ref_h = reference_boxes[..., 3] - reference_boxes[..., 1]
        ref_cx = reference_boxes[..., 0] + 0.5 * ref_w
        ref_cy = reference_boxes[..., 1] + 0.5 * ref_h
        dx = deltas[..., 0] / wx
        dy = deltas[..., 1] / wy
        dw = (deltas[..., 2] / ww).clamp(max=self.scale_clamp)
        dh = (deltas[..., 3] / wh).clamp(max=self.scale_clamp)
        cx = dx * ref_w + ref_cx
        cy = dy * ref_h + ref_cy
        half_w = 0.5 * torch.exp(dw) * ref_w
        half_h = 0.5 * torch.exp(dh) * ref_h
        return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=-1)


SSD_BOX_CODER = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
# Fast R-CNN's box deltas are normalized by these (Girshick 2015; py-faster-rcnn's
# BBOX_NORMALIZE_STDS 0.1, 0.1, 0.2, 0.2 = weights 10, 10, 5, 5; torchvision's RoIHeads).
ROI_BOX_CODER = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
