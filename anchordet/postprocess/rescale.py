"""Mapping detections from the resized image the model saw back to the original image.

The eval/predict pipelines only resize (no crop, no flip), so the map is a per-axis scale.
"""
from __future__ import annotations

from anchordet.structures.boxes import clip_boxes
from anchordet.structures.targets import Detections


def rescale_detections(detections: Detections, from_size: tuple[int, int], to_size: tuple[int, int]) -> Detections:
    """Scale boxes from an image of ``from_size`` (h, w) to one of ``to_size`` (h, w), clipped."""
    scale_y = to_size[0] / from_size[0]
    scale_x = to_size[1] / from_size[1]
    scale = detections.boxes.new_tensor([scale_x, scale_y, scale_x, scale_y])
    boxes = clip_boxes(detections.boxes * scale, to_size)
    return Detections(boxes, detections.scores, detections.labels)
