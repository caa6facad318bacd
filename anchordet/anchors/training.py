"""``TrainingAnchors``: what a detector's training matches against for one input size.

Every detector has ``training_anchors(image_size)``: its anchors for an image of that size (after
the data pipeline's resize) alone in its batch, made by its own generator on its own feature
maps, with its training matcher and border rule. The anchor analysis
(``anchordet.analysis.anchors``, ``anchordet anchors``) reads nothing else of a detector.
"""
from __future__ import annotations

from typing import NamedTuple, Union

from torch import Tensor

from anchordet.anchors.grid import GridAnchorGenerator
from anchordet.anchors.ssd import SSDDefaultBoxes
from anchordet.matching.iou_matcher import IoUMatcher

AnchorGenerator = Union[GridAnchorGenerator, SSDDefaultBoxes]


class TrainingAnchors(NamedTuple):
    """Attributes:
        boxes: (A, 4) float32 xyxy anchors in input pixels, every level, in the head's order
            (before the border rule).
        feature_sizes: (H_l, W_l) of each level's feature map.
        input_size: (height, width) the network sees (the image padded to the detector's multiple).
        image_size: (height, width) of the image itself (what the border rule measures against).
        generator: the anchor generator that made ``boxes`` from ``feature_sizes``.
        matcher: the training matcher.
        allowed_border: the target builder's border rule (``DenseTargetBuilder``): anchors
            reaching further outside the image are ignored and never matched; None: all take part.
    """

    boxes: Tensor
    feature_sizes: list[tuple[int, int]]
    input_size: tuple[int, int]
    image_size: tuple[int, int]
    generator: AnchorGenerator
    matcher: IoUMatcher
    allowed_border: float | None
