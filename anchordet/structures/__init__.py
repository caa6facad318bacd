from anchordet.structures.boxes import (
    box_area,
    box_cxcywh_to_xyxy,
    box_ioa,
    box_iou,
    box_xywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_xywh,
    clip_boxes,
    clip_boxes_to_sizes,
    nonempty_mask,
)
from anchordet.structures.image_batch import IMAGENET_MEAN, IMAGENET_STD, ImageBatch, normalize
from anchordet.structures.outputs import DenseOutputs, FlatDetections
from anchordet.structures.targets import Detections, Targets, validate_targets

__all__ = [
    "ImageBatch", "IMAGENET_MEAN", "IMAGENET_STD", "normalize", "DenseOutputs", "FlatDetections", "Targets", "Detections", "validate_targets", "box_area", "box_iou", "box_ioa",
    "box_xyxy_to_cxcywh", "box_cxcywh_to_xyxy", "box_xywh_to_xyxy", "box_xyxy_to_xywh",
    "clip_boxes", "clip_boxes_to_sizes", "nonempty_mask",
]
