"""RoI pooling: thin wrappers over ``torchvision.ops.roi_pool`` / ``roi_align`` (docs/design.md
contract 7) taking one box tensor per image, and slow plain-torch references for the tests.

- RoIPool (Girshick 2015, Sec. 2.1; seed 003's 7x7 max pooling): box corners rounded to the
  feature grid, max over each of the output bins.
- RoIAlign (He et al. 2017, Sec. 3): bilinear samples averaged per bin, no rounding.
  ``aligned=True`` shifts boxes by half a pixel so that a box's corner maps onto the feature
  grid's corner (detectron2's ROIAlignV2); ``aligned=False`` is the paper's / torchvision
  Faster R-CNN's version.

Both differentiate with respect to the features, so the RoI head's loss reaches the backbone
(seed 003 cut that gradient with ``.data``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor
from torchvision.ops import roi_align as _tv_roi_align
from torchvision.ops import roi_pool as _tv_roi_pool


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _as_float_list(features: Tensor, boxes_per_image: Sequence[Tensor]) -> list[Tensor]:
    if len(boxes_per_image) != features.shape[0]:
        raise ValueError(f"got boxes for {len(boxes_per_image)} images but {features.shape[0]} feature maps")
    return [b.to(features.dtype).reshape(-1, 4) for b in boxes_per_image]


def roi_pool(features: Tensor, boxes_per_image: Sequence[Tensor], output_size: int | Sequence[int],
             spatial_scale: float) -> Tensor:
    """Args:
        features: (B, C, H, W).
        boxes_per_image: B tensors (R_i, 4) xyxy in input-image pixels.
        output_size: bins per side (7 for VGG16's fc6).
        spatial_scale: feature pixels per input pixel (1/16 for a stride-16 map).
    Returns:
        (sum R_i, C, h, w) pooled features, images' boxes in order.
    """
    return _tv_roi_pool(features, _as_float_list(features, boxes_per_image), _pair(output_size), spatial_scale)


def roi_align(features: Tensor, boxes_per_image: Sequence[Tensor], output_size: int | Sequence[int],
              spatial_scale: float, sampling_ratio: int = 0, aligned: bool = True) -> Tensor:
    """As ``roi_pool``; ``sampling_ratio`` bilinear samples per bin side (0: adaptive,
    ``ceil(box side / output side)``, detectron2's default)."""
    return _tv_roi_align(features, _as_float_list(features, boxes_per_image), _pair(output_size),
                         spatial_scale, sampling_ratio, aligned)


@dataclass(frozen=True)
class RoIPooler:
    """A configured pooling step. ``kind`` "pool" (RoIPool, the VGG16 design) or "align"."""

    kind: Literal["pool", "align"] = "pool"
    output_size: int = 7
    spatial_scale: float = 1.0 / 16
    sampling_ratio: int = 0
    aligned: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("pool", "align"):
            raise ValueError(f"RoI pooling kind must be 'pool' or 'align', got {self.kind!r}")
        if self.output_size < 1:
            raise ValueError(f"RoI output_size must be >= 1, got {self.output_size}")

    def __call__(self, features: Tensor, boxes_per_image: Sequence[Tensor]) -> Tensor:
        """(B, C, H, W), B x (R_i, 4) -> (sum R_i, C, output_size, output_size)."""
        if self.kind == "pool":
            return roi_pool(features, boxes_per_image, self.output_size, self.spatial_scale)
        return roi_align(features, boxes_per_image, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned)

    def pool_flat(self, features: Tensor, boxes: Tensor, batch_index: Tensor) -> Tensor:
        """(B, C, H, W), flat boxes (R, 4) xyxy with their image (R,) -> (R, C, s, s): ``__call__``
        for boxes that are one tensor (traceable: torchvision's (R, 5) RoI format, which its
        ONNX translation maps onto ``MaxRoiPool`` / ``RoiAlign``)."""
        rois = torch.cat([batch_index[:, None].to(features.dtype), boxes.to(features.dtype)], dim=1)  # (R, 5)
        if self.kind == "pool":
            return _tv_roi_pool(features, rois, _pair(self.output_size), self.spatial_scale)
        return _tv_roi_align(features, rois, _pair(self.output_size), self.spatial_scale, self.sampling_ratio,
                             self.aligned)


def _round_half_away(x: float) -> int:
    # C++ std::round, used by torchvision's kernel (Python's round() rounds half to even).
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def roi_pool_reference(features: Tensor, boxes_per_image: Sequence[Tensor], output_size: int | Sequence[int],
                       spatial_scale: float) -> Tensor:
    """RoIPool in plain Python loops, following Fast R-CNN's Caffe layer: the slow reference."""
    out_h, out_w = _pair(output_size)
    _, channels, height, width = features.shape
    outputs = []
    for image, boxes in enumerate(boxes_per_image):
        for box in boxes.tolist():
            x1, y1, x2, y2 = (_round_half_away(v * spatial_scale) for v in box)
            bin_h, bin_w = max(y2 - y1 + 1, 1) / out_h, max(x2 - x1 + 1, 1) / out_w
            pooled = features.new_zeros((channels, out_h, out_w))
            for ph in range(out_h):
                h0 = min(max(math.floor(ph * bin_h) + y1, 0), height)
                h1 = min(max(math.ceil((ph + 1) * bin_h) + y1, 0), height)
                for pw in range(out_w):
                    w0 = min(max(math.floor(pw * bin_w) + x1, 0), width)
                    w1 = min(max(math.ceil((pw + 1) * bin_w) + x1, 0), width)
                    if h1 > h0 and w1 > w0:  # an empty bin stays 0
                        pooled[:, ph, pw] = features[image, :, h0:h1, w0:w1].amax(dim=(1, 2))
            outputs.append(pooled)
    return torch.stack(outputs) if outputs else features.new_zeros((0, channels, out_h, out_w))


def _bilinear(feature: Tensor, y: float, x: float) -> Tensor:
    """(C, H, W) sampled at (y, x) with RoIAlign's border rule: 0 beyond one pixel outside,
    clamped to the edge inside that margin."""
    _, height, width = feature.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return feature.new_zeros(feature.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * feature[:, y0, x0] + (1 - ly) * lx * feature[:, y0, x1]
            + ly * (1 - lx) * feature[:, y1, x0] + ly * lx * feature[:, y1, x1])


def roi_align_reference(features: Tensor, boxes_per_image: Sequence[Tensor], output_size: int | Sequence[int],
                        spatial_scale: float, sampling_ratio: int = 0, aligned: bool = True) -> Tensor:
    """RoIAlign in plain Python loops (He et al. 2017, Sec. 3): the slow reference."""
    out_h, out_w = _pair(output_size)
    channels = features.shape[1]
    offset = 0.5 if aligned else 0.0
    outputs = []
    for image, boxes in enumerate(boxes_per_image):
        for box in boxes.tolist():
            x1, y1, x2, y2 = (v * spatial_scale - offset for v in box)
            roi_w, roi_h = x2 - x1, y2 - y1
            if not aligned:  # the original version forces boxes to be at least 1x1
                roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
            bin_h, bin_w = roi_h / out_h, roi_w / out_w
            grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
            grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
            count = max(grid_h * grid_w, 1)
            pooled = features.new_zeros((channels, out_h, out_w))
            for ph in range(out_h):
                for pw in range(out_w):
                    total = features.new_zeros(channels)
                    for iy in range(grid_h):
                        y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                        for ix in range(grid_w):
                            x = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                            total = total + _bilinear(features[image], y, x)
                    pooled[:, ph, pw] = total / count
            outputs.append(pooled)
    return torch.stack(outputs) if outputs else features.new_zeros((0, channels, out_h, out_w))
