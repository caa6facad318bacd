from anchordet.structures.boxes import (
    box_area,
    box_cxcywh_to_xyxy,
    box_ioa,
    box_iou,
    box_xywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_xywh,
    clip_boxes,
    nonempty_mask,
)
from anchordet.structures.image_batch import ImageBatch
from anchordet.structures.targets import Detections, Targets, validate_targets

__all__ = [
    "ImageBatch", "Targets", "Detections", "validate_targets", "box_area", "box_iou", "box_ioa",
    "box_xyxy_to_cxcywh", "box_cxcywh_to_xyxy", "box_xywh_to_xyxy", "box_xyxy_to_xywh",
    "clip_boxes", "nonempty_mask",
]
