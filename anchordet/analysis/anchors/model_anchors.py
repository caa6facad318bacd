"""The anchors a built detector really uses for one input size, and the matcher its training uses.

``detector_anchors(model, factory, image_size)`` wraps the detector's own ``training_anchors``
method (RetinaNet, SSD, Faster R-CNN's RPN alike: its generator on its feature maps, its padding,
its matcher and border rule); ``.at(image_size)`` gives the anchors of an image of that (resized)
size, with only the anchors the border rule keeps, as ``DenseTargetBuilder`` matches them.
``with_generator`` puts another generator on the same feature maps (the anchor search).

In training a batch is padded to its largest image; here each image is padded alone, which only
drops anchors centred beyond the image's own padded border.

Every level of these generators is a lattice: the centres are ``((j + offset) * stride_x,
(i + offset) * stride_y)`` and each location has the same S box shapes. ``AnchorLevel`` keeps
that description next to the boxes so that ``coverage.sparse_match_statistics`` can find the
few anchors that can matter for a gt box without an IoU against every anchor.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from anchordet.anchors.grid import GridAnchorGenerator, anchors_inside
from anchordet.anchors.ssd import SSDDefaultBoxes
from anchordet.anchors.training import AnchorGenerator, TrainingAnchors
from anchordet.matching.iou_matcher import IoUMatcher

# Which factory options size the anchors (``suggest.overrides`` prints them): one entry per
# factory a config can name (``config.schema.MODEL_FACTORIES``).
FACTORY_KINDS = {"retinanet_resnet_fpn": "retinanet", "ssd_vgg16": "ssd", "faster_rcnn_vgg16": "rpn",
                 "faster_rcnn_resnet_c4": "rpn"}


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
        generator: the generator of ``boxes``.
    """

    boxes: Tensor
    levels: tuple[AnchorLevel, ...]
    kept: Tensor | None
    matcher: IoUMatcher
    image_size: tuple[int, int]
    generator: AnchorGenerator

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


def lattice_levels(generator: AnchorGenerator, feature_sizes: Sequence[tuple[int, int]],
                   input_size: tuple[int, int]) -> list[AnchorLevel]:
    """The lattice description of ``generator``'s anchors on these feature maps."""
    if isinstance(generator, SSDDefaultBoxes):
        return ssd_levels(generator, feature_sizes, input_size)
    return grid_levels(generator, feature_sizes)


def anchor_boxes(generator: AnchorGenerator, feature_sizes: Sequence[tuple[int, int]],
                 input_size: tuple[int, int]) -> Tensor:
    """(A, 4) anchors of ``generator`` on these feature maps, as the detectors concatenate them."""
    if isinstance(generator, SSDDefaultBoxes):
        return torch.cat(generator.default_boxes(feature_sizes, input_size))
    return torch.cat(generator.grid_anchors(feature_sizes))


def anchors_per_location(generator: AnchorGenerator) -> int | list[int]:
    """Anchors per feature-map location: one count (grid) or one per level (SSD)."""
    if isinstance(generator, SSDDefaultBoxes):
        return generator.num_boxes_per_location
    return generator.num_anchors_per_location


@dataclass
class DetectorAnchors:
    """How one detector makes anchors; ``at(size)`` gives them for a resized image.

    Attributes:
        training_anchors: (height, width) -> ``TrainingAnchors``: a detector's method of that
            name (called once per size: the results are cached).
        kind: which factory options size the anchors: "retinanet", "ssd" or "rpn" (``FACTORY_KINDS``).
        generator: the generator ``at`` uses: the detector's own, or (``with_generator``) another
            one for the same feature maps.
    """

    training_anchors: Callable[[tuple[int, int]], TrainingAnchors]
    kind: str
    generator: AnchorGenerator
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def with_generator(self, generator: AnchorGenerator) -> "DetectorAnchors":
        """The same detector with other anchor sizes or ratios (the feature maps do not change;
        the cache of ``training_anchors`` is shared)."""
        return dataclasses.replace(self, generator=generator)

    def at(self, image_size: tuple[int, int]) -> ModelAnchors:
        """Args: image_size (height, width) of the image after the data pipeline's resize."""
        image_size = (int(image_size[0]), int(image_size[1]))
        if image_size not in self.cache:
            self.cache[image_size] = self.training_anchors(image_size)
        probe = self.cache[image_size]
        own = self.generator == probe.generator
        boxes = probe.boxes if own else anchor_boxes(self.generator, probe.feature_sizes, probe.input_size)
        levels = lattice_levels(self.generator, probe.feature_sizes, probe.input_size)
        kept = None
        if probe.allowed_border is not None:  # DenseTargetBuilder's border rule
            inside = anchors_inside(boxes, image_size, probe.allowed_border)
            kept = torch.where(inside, torch.cumsum(inside.long(), 0) - 1, -1)
            boxes = boxes[inside]
        return ModelAnchors(boxes, tuple(levels), kept, probe.matcher, image_size, self.generator)


def detector_anchors(model: nn.Module, factory: str, image_size: tuple[int, int]) -> DetectorAnchors:
    """A built detector (its ``training_anchors``) made by ``factory`` (a config's
    ``model.factory``); ``image_size``: one resized input size it takes (for SSD its square
    side), to read its own generator."""
    if factory not in FACTORY_KINDS:
        raise ValueError(f"anchor analysis supports RetinaNet, SSD and Faster R-CNN (the factories "
                         f"{', '.join(FACTORY_KINDS)}), not {factory!r}")
    probe = model.training_anchors
    return DetectorAnchors(probe, FACTORY_KINDS[factory], probe(tuple(image_size)).generator)
