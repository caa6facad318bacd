"""Grid anchors for RetinaNet (P3-P7) and the RPN (stride 16).

Order (the contract every dense head keeps): per level, locations row-major (``for y: for x``),
and at each location the A = len(aspect_ratios) * len(sizes) anchors ratio-major
(``for ratio: for size``), as torchvision's ``AnchorGenerator`` and seed 001's ``Anchors``.
A head's output reshaped through (B, H, W, A, K) is in this order.

Aspect ratio is height / width (seed 001 and torchvision): an anchor of size s and ratio r has
width s / sqrt(r) and height s * sqrt(r), so its area is s^2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


def retinanet_anchor_sizes(base_sizes: Sequence[float] = (32, 64, 128, 256, 512),
                           octave_scales: Sequence[float] = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))) -> list[list[float]]:
    """Per-level sizes ``base * scale``: Lin et al. 2017, Sec. 4 (areas 32^2..512^2 on P3-P7,
    three octave scales {2^0, 2^(1/3), 2^(2/3)})."""
    return [[base * scale for scale in octave_scales] for base in base_sizes]


@dataclass(frozen=True)
class GridAnchorGenerator:
    """Anchors on the feature-map grids of one or more levels.

    Attributes:
        sizes_per_level: for each level, the anchor sizes (sqrt of area) in pixels.
        aspect_ratios: height / width ratios, the same on every level.
        strides: the stride of each level in input pixels.
        offset: anchor centre at ``(x + offset) * stride``; 0.5 puts it in the cell's centre
            (seed 001, seed 003), 0.0 on the cell's corner (torchvision).
        round_base: round the centred base anchors to whole pixels (torchvision does).
    """

    sizes_per_level: tuple[tuple[float, ...], ...]
    aspect_ratios: tuple[float, ...]
    strides: tuple[int, ...]
    offset: float = 0.5
    round_base: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes_per_level", tuple(tuple(float(s) for s in sizes) for sizes in self.sizes_per_level))
        object.__setattr__(self, "aspect_ratios", tuple(float(r) for r in self.aspect_ratios))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        if len(self.sizes_per_level) != len(self.strides):
            raise ValueError(f"{len(self.sizes_per_level)} levels of sizes but {len(self.strides)} strides")
        counts = {len(s) for s in self.sizes_per_level}
        if len(counts) != 1:
            raise ValueError(f"every level needs the same number of sizes, got {sorted(counts)}")
        if any(r <= 0 for r in self.aspect_ratios) or any(s <= 0 for sizes in self.sizes_per_level for s in sizes):
            raise ValueError("anchor sizes and aspect ratios must be positive")

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.aspect_ratios) * len(self.sizes_per_level[0])

    def base_anchors(self, level: int, device=None, dtype=torch.float32) -> Tensor:
        """(A, 4) xyxy anchors centred on (0, 0), ratio-major."""
        sizes = torch.tensor(self.sizes_per_level[level], dtype=torch.float64)
        ratios = torch.tensor(self.aspect_ratios, dtype=torch.float64)
        h_ratios = ratios.sqrt()
        widths = (sizes[None, :] / h_ratios[:, None]).reshape(-1)  # (R * S,)
        heights = (sizes[None, :] * h_ratios[:, None]).reshape(-1)
        base = torch.stack((-widths, -heights, widths, heights), dim=1) / 2
        if self.round_base:
            base = base.round()
        return base.to(device=device, dtype=dtype)

    def grid_anchors(self, feature_sizes: Sequence[tuple[int, int]], device=None,
                     dtype=torch.float32) -> list[Tensor]:
        """Anchors of every level.

        Args:
            feature_sizes: (H_l, W_l) of each level's feature map.
        Returns:
            per level a (H_l * W_l * A, 4) xyxy tensor in input-image pixels.
        """
        if len(feature_sizes) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} feature maps, got {len(feature_sizes)}")
        anchors = []
        for level, ((height, width), stride) in enumerate(zip(feature_sizes, self.strides)):
            shift_x = (torch.arange(width, device=device, dtype=torch.float32) + self.offset) * stride
            shift_y = (torch.arange(height, device=device, dtype=torch.float32) + self.offset) * stride
            yy, xx = torch.meshgrid(shift_y, shift_x, indexing="ij")
            shifts = torch.stack((xx, yy, xx, yy), dim=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
            base = self.base_anchors(level, device=device).reshape(1, -1, 4)  # (1, A, 4)
            anchors.append((shifts + base).reshape(-1, 4).to(dtype))  # (H*W*A, 4)
        return anchors

    def feature_sizes_for(self, image_size: tuple[int, int]) -> list[tuple[int, int]]:
        """The feature sizes ``ceil(size / stride)`` for an input size, when the network's
        strided convolutions round up (ResNet + FPN with padding 1 do)."""
        return [(math.ceil(image_size[0] / s), math.ceil(image_size[1] / s)) for s in self.strides]


def anchors_inside(anchors: Tensor, image_size: tuple[int, int], tolerance: float = 0.0) -> Tensor:
    """(A, 4) -> (A,) bool: True for anchors entirely inside an image of (height, width),
    allowing ``tolerance`` pixels outside (seed 003 ignores anchors crossing the border)."""
    height, width = image_size
    return ((anchors[:, 0] >= -tolerance) & (anchors[:, 1] >= -tolerance)
            & (anchors[:, 2] <= width + tolerance) & (anchors[:, 3] <= height + tolerance))
