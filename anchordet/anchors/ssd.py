"""SSD default boxes (Liu et al. 2016, Sec. 2.2 "Choosing scales and aspect ratios"; seed 002's
PriorBox).

On level k, a feature map of F_h x F_w cells with step s_k (input pixels per cell), the default
boxes of cell (i, j) are centred on ((j + 0.5) * s_k, (i + 0.5) * s_k) and have the sizes
(width, height), in this order (ssd.pytorch's PriorBox and torchvision's DefaultBoxGenerator):

    (m_k, m_k)                       m_k = min size of level k
    (m'_k, m'_k)                     m'_k = sqrt(m_k * M_k), M_k = max size of level k
    for each aspect ratio a of level k:
        (m_k * sqrt(a), m_k / sqrt(a))   wide
        (m_k / sqrt(a), m_k * sqrt(a))   tall

so a level with ratios [2] has 4 boxes per location and one with [2, 3] has 6.
Order (the contract the SSD head keeps): levels in order; within a level, cells row-major
(``for i: for j``); within a cell, the list above. A head output reshaped through
(B, H, W, A, C) is in this order, as in torchvision's ``SSDScoringHead``.

Clipping (``clip=True``): widths and heights are clipped to the image size, as ssd.pytorch's
``output.clamp_(0, 1)`` on (cx, cy, w, h) and torchvision's ``_wh_pair.clamp(0, 1)``; the centres
stay, so a box near the border may still reach outside the image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class SSDDefaultBoxes:
    """Default box generator.

    Attributes:
        steps: per level, input pixels per feature-map cell (8, 16, 32, 64, 100, 300 for SSD300).
        min_sizes: per level, the side m_k of the small square box, in pixels.
        max_sizes: per level, M_k; the second square box has side sqrt(m_k * M_k).
        aspect_ratios: per level, the ratios a >= 1 (width / height of the wide box; each adds a
            wide and a tall box).
        clip: clip widths and heights to the image size.
    """

    steps: tuple[float, ...]
    min_sizes: tuple[float, ...]
    max_sizes: tuple[float, ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    clip: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(float(s) for s in self.steps))
        object.__setattr__(self, "min_sizes", tuple(float(s) for s in self.min_sizes))
        object.__setattr__(self, "max_sizes", tuple(float(s) for s in self.max_sizes))
        object.__setattr__(self, "aspect_ratios", tuple(tuple(float(a) for a in r) for r in self.aspect_ratios))
        lengths = {len(self.steps), len(self.min_sizes), len(self.max_sizes), len(self.aspect_ratios)}
        if len(lengths) != 1:
            raise ValueError(f"steps ({len(self.steps)}), min_sizes ({len(self.min_sizes)}), max_sizes "
                             f"({len(self.max_sizes)}) and aspect_ratios ({len(self.aspect_ratios)}) "
                             "need one entry per level")
        for level, (lo, hi) in enumerate(zip(self.min_sizes, self.max_sizes)):
            if not 0 < lo <= hi:
                raise ValueError(f"level {level}: need 0 < min_size ({lo:g}) <= max_size ({hi:g})")
        if any(s <= 0 for s in self.steps) or any(a <= 0 for r in self.aspect_ratios for a in r):
            raise ValueError("steps and aspect ratios must be positive")

    @property
    def num_levels(self) -> int:
        return len(self.steps)

    @property
    def num_boxes_per_location(self) -> list[int]:
        """2 squares + 2 per aspect ratio, per level ([4, 6, 6, 6, 4, 4] for SSD300)."""
        return [2 + 2 * len(ratios) for ratios in self.aspect_ratios]

    def box_sizes(self, level: int) -> Tensor:
        """(A_l, 2) float64 (width, height) in pixels of one location's boxes, before clipping."""
        small, large = self.min_sizes[level], self.max_sizes[level]
        sizes = [(small, small), (math.sqrt(small * large),) * 2]
        for ratio in self.aspect_ratios[level]:
            root = math.sqrt(ratio)
            sizes += [(small * root, small / root), (small / root, small * root)]
        return torch.tensor(sizes, dtype=torch.float64)

    def default_boxes(self, feature_sizes: Sequence[tuple[int, int]], image_size: tuple[int, int],
                      device=None, dtype=torch.float32) -> list[Tensor]:
        """Args:
            feature_sizes: per level (F_h, F_w).
            image_size: (height, width) of the input in pixels (the clipping limit).
        Returns:
            per level a (F_h * F_w * A_l, 4) xyxy tensor in input pixels, in the order of the
            module docstring.
        """
        if len(feature_sizes) != self.num_levels:
            raise ValueError(f"{len(feature_sizes)} feature maps for {self.num_levels} levels of default boxes")
        height, width = image_size
        boxes_per_level = []
        for level, (rows, cols) in enumerate(feature_sizes):
            step = self.steps[level]
            wh = self.box_sizes(level)  # (A_l, 2)
            if self.clip:
                wh = torch.minimum(wh, torch.tensor([float(width), float(height)], dtype=torch.float64))
            cy, cx = torch.meshgrid((torch.arange(rows, dtype=torch.float64) + 0.5) * step,
                                    (torch.arange(cols, dtype=torch.float64) + 0.5) * step, indexing="ij")
            centres = torch.stack((cx, cy), dim=-1).reshape(-1, 1, 2)  # (F_h * F_w, 1, 2)
            half = wh[None] / 2  # (1, A_l, 2)
            boxes = torch.cat((centres - half, centres + half), dim=-1)  # (F_h * F_w, A_l, 4)
            boxes_per_level.append(boxes.reshape(-1, 4).to(device=device, dtype=dtype))
        return boxes_per_level


def paper_box_sizes(image_size: int, dataset: str = "coco") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(min_sizes, max_sizes) of the original SSD models (Liu et al. 2016, Sec. 2.2 and 3.1; the
    Caffe scripts ssd_pascal.py, ssd_coco.py and their _512 versions).

    The scales s_k are percentages of the image side: the first level gets a fixed small scale
    (10% on VOC, 7% on COCO at 300; 4% at 512), the others s_min..s_max in equal integer steps,
    and M_k = m_{k+1}. ``(300, "coco")`` is torchvision's ``ssd300_vgg16`` (scales 0.07, 0.15,
    0.33, 0.51, 0.69, 0.87, 1.05).
    """
    # (first min %, first max %, s_min %, s_max %, levels): scripts' min_ratio / max_ratio.
    table = {(300, "voc"): (10, 20, 20, 90, 6), (300, "coco"): (7, 15, 15, 90, 6),
             (512, "voc"): (4, 10, 15, 90, 7), (512, "coco"): (4, 10, 10, 90, 7)}
    if (image_size, dataset) not in table:
        raise ValueError(f"no paper box sizes for image size {image_size} and dataset {dataset!r}; "
                         f"known: {sorted(table)}")
    first_min, first_max, low, high, levels = table[(image_size, dataset)]
    step = (high - low) // (levels - 2)  # int(floor(...)) in the Caffe scripts
    ratios = list(range(low, high + 1, step))
    min_sizes = [first_min] + ratios
    max_sizes = [first_max] + [r + step for r in ratios]
    return (tuple(image_size * r / 100 for r in min_sizes), tuple(image_size * r / 100 for r in max_sizes))
