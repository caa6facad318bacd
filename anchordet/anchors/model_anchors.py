"""The anchors a built detector really uses for one input size, and the matcher its training uses.

``detector_anchors(model)`` reads the model's own anchor generator, matcher, padding and border
rule; ``.at(image_size)`` gives the anchors of an image of that (resized) size:

- RetinaNet: ``model.anchor_generator`` on the P3..P7 maps of the input padded to
  ``model.size_divisible``; matcher ``model.target_builder.matcher``.
- SSD: ``model.default_boxes`` on the source maps of the fixed ``model.image_size`` input;
  matcher ``model.target_builder.matcher``.
- Faster R-CNN: the RPN's ``anchor_generator`` on the stride-16 map of the padded input, keeping
  only the anchors inside the image (``rpn.allowed_border``), as ``RegionProposalNetwork.build_targets``.

Feature-map sizes come from running the model's own backbone (and FPN) on a ``meta`` tensor: a
shape-only forward, no arithmetic of ours, no compute. In training a batch is padded to its
largest image; here each image is padded alone, which only drops anchors centred beyond the
image's own padded border.

Every level of these generators is a lattice: the centres are ``((j + offset) * stride_x,
(i + offset) * stride_y)`` and each location has the same S box shapes. ``AnchorLevel`` keeps
that description next to the boxes so that ``analysis.sparse_match_statistics`` can find the
few anchors that can matter for a gt box without an IoU against every anchor.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from anchordet.anchors.grid import GridAnchorGenerator, anchors_inside
from anchordet.errors import UserError
from anchordet.matching.iou_matcher import IoUMatcher


@dataclass(frozen=True)
class AnchorLevel:
    """One level as a lattice.

    Attributes:
        offsets: (S, 4) float64 box corners relative to the location's centre, xyxy, in the
            model's order within a location.
        grid: (H, W) locations.
        stride: (stride_y, stride_x) pixels between centres.
        offset: centre of cell (i, j) at ((j + offset) * stride_x, (i + offset) * stride_y).
        start: index of the level's first anchor in the model's full anchor list.
    """

    offsets: Tensor
    grid: tuple[int, int]
    stride: tuple[float, float]
    offset: float
    start: int

    @property
    def num_anchors(self) -> int:
        return self.grid[0] * self.grid[1] * self.offsets.shape[0]

    def boxes(self) -> Tensor:
        """(H * W * S, 4) float64, row-major locations then shapes."""
        height, width = self.grid
        cy = (torch.arange(height, dtype=torch.float64) + self.offset) * self.stride[0]
        cx = (torch.arange(width, dtype=torch.float64) + self.offset) * self.stride[1]
        yy, xx = torch.meshgrid(cy, cx, indexing="ij")
        centres = torch.stack((xx, yy, xx, yy), dim=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
        return (centres + self.offsets[None]).reshape(-1, 4)


@dataclass(frozen=True)
class ModelAnchors:
    """The anchors the matcher sees for one input size.

    Attributes:
        boxes: (A, 4) float32 xyxy input pixels, from the model's generator, in its order
            (only the kept anchors where a border rule applies).
        levels: the lattice description of the full (unfiltered) list.
        kept: (A_full,) int64 position of each full-list anchor in ``boxes``, -1 where dropped
            by the border rule; None when every anchor is kept.
        matcher: the training matcher.
        image_size: (height, width) of the resized image.
    """

    boxes: Tensor
    levels: tuple[AnchorLevel, ...]
    kept: Tensor | None
    matcher: IoUMatcher
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        # The lattice must describe exactly the generator's boxes, or the sparse search is wrong.
        full = torch.cat([level.boxes() for level in self.levels]) if self.levels else torch.zeros(0, 4)
        if self.kept is not None:
            full = full[self.kept >= 0]
        if full.shape != self.boxes.shape or not torch.allclose(full.float(), self.boxes, atol=1e-2):
            raise AssertionError("anchor lattice does not reproduce the generator's anchors")


def grid_levels(generator: GridAnchorGenerator, feature_sizes: Sequence[tuple[int, int]]) -> list[AnchorLevel]:
    levels, start = [], 0
    for index, (size, stride) in enumerate(zip(feature_sizes, generator.strides)):
        level = AnchorLevel(generator.base_anchors(index, dtype=torch.float64), tuple(size), (float(stride),) * 2,
                            generator.offset, start)
        levels.append(level)
        start += level.num_anchors
    return levels


def ssd_levels(default_boxes, feature_sizes: Sequence[tuple[int, int]], image_size: tuple[int, int]) -> list[AnchorLevel]:
    """SSD default boxes (``anchors.ssd.SSDDefaultBoxes``): centres at (j + 0.5) * step."""
    levels, start = [], 0
    height, width = image_size
    for index, size in enumerate(feature_sizes):
        wh = default_boxes.box_sizes(index)  # (S, 2) width, height
        if default_boxes.clip:
            wh = torch.minimum(wh, torch.tensor([float(width), float(height)], dtype=torch.float64))
        offsets = torch.cat((-wh / 2, wh / 2), dim=1)
        step = float(default_boxes.steps[index])
        level = AnchorLevel(offsets, tuple(size), (step, step), 0.5, start)
        levels.append(level)
        start += level.num_anchors
    return levels


class FeatureSizes:
    """``(padded height, width) -> [(H_l, W_l)]`` by a shape-only forward of the model's feature
    modules on the ``meta`` device (a copy: the model itself is untouched). Cached per size."""

    def __init__(self, modules: Sequence[nn.Module]):
        self.modules = [copy.deepcopy(m).to("meta").eval() for m in modules]
        self.cache: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def __call__(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        if size not in self.cache:
            with torch.no_grad():
                x = torch.zeros((1, 3, *size), device="meta")
                for module in self.modules:
                    x = module(x)
            features = x if isinstance(x, (list, tuple)) else [x]
            self.cache[size] = [(int(f.shape[-2]), int(f.shape[-1])) for f in features]
        return self.cache[size]


@dataclass
class DetectorAnchors:
    """How one detector makes anchors; ``at(size)`` gives them for a resized image.

    Attributes:
        kind: "retinanet", "ssd" or "rpn".
        generator: a ``GridAnchorGenerator`` or SSD ``SSDDefaultBoxes``.
        matcher: the training matcher.
        feature_sizes: padded input size -> feature map sizes.
        size_divisible: the padding multiple (1 for SSD).
        fixed_size: SSD's square input side, else None.
        allowed_border: the RPN's border rule (None: every anchor is kept).
    """

    kind: str
    generator: object
    matcher: IoUMatcher
    feature_sizes: Callable[[tuple[int, int]], list[tuple[int, int]]]
    size_divisible: int = 1
    fixed_size: int | None = None
    allowed_border: float | None = None

    def with_generator(self, generator) -> "DetectorAnchors":
        """The same detector with other anchor sizes or ratios (the feature maps do not change)."""
        return dataclasses.replace(self, generator=generator)

    def at(self, image_size: tuple[int, int]) -> ModelAnchors:
        """Args: image_size (height, width) of the image after the data pipeline's resize."""
        image_size = (int(image_size[0]), int(image_size[1]))
        if self.fixed_size is not None and image_size != (self.fixed_size, self.fixed_size):
            raise UserError(f"this SSD takes {self.fixed_size}x{self.fixed_size} inputs, got {image_size[0]}x"
                            f"{image_size[1]}: use data.train_transform 'ssd' or 'fixed' with data.fixed_size "
                            f"{self.fixed_size}")
        d = self.size_divisible
        padded = (math.ceil(image_size[0] / d) * d, math.ceil(image_size[1] / d) * d)
        feature_sizes = self.feature_sizes(padded)
        if self.kind == "ssd":
            boxes = torch.cat(self.generator.default_boxes(feature_sizes, padded))
            levels = ssd_levels(self.generator, feature_sizes, padded)
        else:
            boxes = torch.cat(self.generator.grid_anchors(feature_sizes))
            levels = grid_levels(self.generator, feature_sizes)
        kept = None
        if self.allowed_border is not None:
            inside = anchors_inside(boxes, image_size, self.allowed_border)
            kept = torch.where(inside, torch.cumsum(inside.long(), 0) - 1, -1)
            boxes = boxes[inside]
        return ModelAnchors(boxes, tuple(levels), kept, self.matcher, image_size)


def detector_anchors(model: nn.Module) -> DetectorAnchors:
    """Read a built RetinaNet, SSD or Faster R-CNN (its RPN)."""
    name = type(model).__name__
    if name == "RetinaNet":
        return DetectorAnchors("retinanet", model.anchor_generator, model.target_builder.matcher,
                               FeatureSizes([model.backbone, model.fpn]), model.size_divisible)
    if name == "SSD":
        return DetectorAnchors("ssd", model.default_boxes, model.target_builder.matcher,
                               FeatureSizes([model.backbone]), 1, model.image_size)
    if name == "FasterRCNN":
        rpn = model.rpn
        return DetectorAnchors("rpn", rpn.anchor_generator, rpn.target_builder.matcher, FeatureSizes([model.backbone]),
                               model.size_divisible, None, rpn.allowed_border)
    raise ValueError(f"anchor analysis supports RetinaNet, SSD and Faster R-CNN, not {name}")


def model_anchors(model: nn.Module, image_size: tuple[int, int]) -> ModelAnchors:
    """The anchors ``model`` matches against for an input of ``image_size`` (height, width)."""
    return detector_anchors(model).at(image_size)
