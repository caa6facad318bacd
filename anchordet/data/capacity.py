"""What a configured model can find in a dataset: ``anchordet check-data DATA --config CONFIG``.

Two silent limits, measured against the records (torch-free, like the rest of check-data):

- **detections kept per image**: an image with more objects than the model keeps cannot reach
  recall 1 (RetinaNet / SSD ``max_detections``; Faster R-CNN ``box_detections_per_img`` and, before
  it, ``rpn_post_nms_top_n_test`` proposals). Predict such images tiled (``--tile``) or raise the cap.
- **objects too small for the anchors**: after the eval resize of the config (keep-ratio
  ``min_size`` / ``max_size`` or SSD's fixed square), an object of side ``s`` (sqrt of its area)
  reaches at best IoU ``s^2 / a^2`` with the smallest anchor of side ``a`` (same centre, square);
  below the matcher's positive threshold ``t`` (s < a * sqrt(t)) training only has low-quality
  matches for it. ``anchordet anchors -c CONFIG`` gives the full coverage analysis.

The factory defaults repeated in ``FAMILY_DEFAULTS`` are checked against the factories' own
signatures by tests/data/test_capacity.py, so they cannot drift apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from anchordet.config.schema import DataConfig, ModelConfig
from anchordet.data.validate import ImageRecord, RecordSet

# factory -> the defaults this module reads (the factories' signature defaults)
FAMILY_DEFAULTS = {
    "retinanet_resnet_fpn": {"max_detections": 300, "anchor_base_sizes": (32, 64, 128, 256, 512)},
    "ssd_vgg16": {"max_detections": 300, "image_size": 300},
    "faster_rcnn_resnet_c4": {"box_detections_per_img": 300, "rpn_post_nms_top_n_test": 300,
                              "anchor_sizes": (128, 256, 512), "rpn_fg_iou_thresh": 0.7},
    "faster_rcnn_vgg16": {"box_detections_per_img": 300, "rpn_post_nms_top_n_test": 300,
                          "anchor_sizes": (128, 256, 512), "rpn_fg_iou_thresh": 0.7},
}
SSD_COCO_SMALLEST = 0.07  # SSD's smallest default box is 0.07 of the input side (COCO layout; 21 px at 300)


@dataclass(frozen=True)
class Capacity:
    """keep: detections kept per image (what limits it: ``keep_what``); smallest_anchor: side in
    input pixels; positive_iou: the matcher's positive threshold."""

    keep: int
    keep_what: str
    smallest_anchor: float
    positive_iou: float


def model_capacity(model: ModelConfig) -> Capacity | None:
    """The limits of a configured model (None for a factory this module does not know)."""
    defaults = FAMILY_DEFAULTS.get(model.factory)
    if defaults is None:
        return None
    args = {**defaults, **model.args}
    if model.factory == "retinanet_resnet_fpn":
        sizes = args.get("anchor_sizes")
        smallest = min(min(level) for level in sizes) if sizes else float(args["anchor_base_sizes"][0])
        return Capacity(int(args["max_detections"]), "max_detections", smallest, 0.5)
    if model.factory == "ssd_vgg16":
        smallest = float(args["min_sizes"][0]) if args.get("min_sizes") else SSD_COCO_SMALLEST * int(args["image_size"])
        return Capacity(int(args["max_detections"]), "max_detections", smallest, 0.5)
    boxes, proposals = int(args["box_detections_per_img"]), int(args["rpn_post_nms_top_n_test"])
    keep, what = (boxes, "box_detections_per_img") if boxes <= proposals else (proposals, "rpn_post_nms_top_n_test")
    return Capacity(keep, what, float(min(args["anchor_sizes"])), float(args["rpn_fg_iou_thresh"]))


def eval_scale(data: DataConfig, height: int, width: int) -> tuple[float, float]:
    """(y, x) factors of the config's eval resize for an image of that size."""
    if data.eval_transform == "fixed":
        return data.fixed_size / height, data.fixed_size / width
    low = max(data.min_size) if isinstance(data.min_size, (tuple, list)) else data.min_size
    factor = min(low / min(height, width), data.max_size / max(height, width))
    return factor, factor


def capacity_warnings(records: RecordSet, sizes: dict[int, tuple[int, int]], model: ModelConfig,
                      data: DataConfig) -> list[str]:
    """One line per limit that the dataset reaches (none when the model can take it all)."""
    capacity = model_capacity(model)
    if capacity is None:
        return []
    lines = []
    crowded = [(len([a for a in image.annotations if not a.ignore]), image) for image in records.images]
    over = [(count, image) for count, image in crowded if count > capacity.keep]
    if over:
        count, image = max(over, key=lambda pair: pair[0])
        lines.append(f"{len(over)} image(s) hold more objects than the model keeps ({capacity.keep_what} = "
                     f"{capacity.keep}); the most: {image.source}, image {image.image_id}, {count} objects: its recall "
                     f"cannot reach 1 (predict with --tile, or raise {capacity.keep_what})")
    limit = capacity.smallest_anchor * math.sqrt(capacity.positive_iou)
    small, total, smallest = 0, 0, None
    for image in records.images:
        size = _size(image, sizes)
        if size is None:
            continue
        scale_y, scale_x = eval_scale(data, *size)
        norm_y, norm_x = (size[0], size[1]) if records.normalized else (1.0, 1.0)
        for ann in image.annotations:
            x1, y1, x2, y2 = ann.box
            side = math.sqrt(max(0.0, (x2 - x1) * norm_x * scale_x) * max(0.0, (y2 - y1) * norm_y * scale_y))
            total += 1
            if side < limit:
                small += 1
                if smallest is None or side < smallest[0]:
                    smallest = (side, image, ann)
    if small:
        side, image, ann = smallest
        lines.append(f"{small} of {total} objects are smaller than the anchors can learn at the configured input size: "
                     f"side < {limit:.1f} px after the eval resize (smallest anchor {capacity.smallest_anchor:g} px, "
                     f"positive IoU {capacity.positive_iou:g}); the smallest: {image.source}, image {image.image_id}, "
                     f"{ann.name}, {side:.1f} px (predict with --tile at the objects' own resolution, or smaller "
                     f"anchors: `anchordet anchors -c CONFIG`)")
    return lines


def _size(image: ImageRecord, sizes: dict) -> tuple[int, int] | None:
    size = sizes.get(image.image_id) or image.size
    return None if size is None else (int(size[0]), int(size[1]))
