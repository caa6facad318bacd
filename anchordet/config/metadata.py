"""Checking what a weights file says about itself, before anything is built from it.

A ``.safetensors`` file written by anchordet carries two JSON strings in its metadata:
``anchordet_model`` (the factory and its arguments) and ``anchordet_inference`` (the eval resize,
class names and category ids: ``anchordet.config.inference.InferenceSettings``). Anyone can
write a file, so both are input like any other: every value is checked (type, range, length)
and a bad one is a ``UserError`` of one line naming the file and the field. Bounds keep a bad
file from allocating what no real model needs (``MAX_PARAMETERS`` is checked on the meta device
by ``anchordet.weights_file.build_detector``). Torch-free.
"""
from __future__ import annotations

import json
from typing import Any

from anchordet.errors import UserError

# Faster R-CNN VGG16 (the largest model here) has 137 M; 1e9 float32 parameters are 4 GB.
MAX_PARAMETERS = 1_000_000_000
# Image sides of the eval resize: image_io.MAX_PIXELS allows 8192 x 8192 images.
MAX_SIDE = 8192
# anchor_sizes, a list of lists inside the model dict, is 3 deep.
MAX_NESTING = 6


def parse_json_field(text: Any, source: str, field: str) -> Any:
    """``json.loads(text)`` with errors naming the file and the field; too deep nesting refused."""
    if not isinstance(text, str):
        raise UserError(f"{source}: metadata {field} must be a JSON string, got {type(text).__name__}")
    try:
        value = json.loads(text)
    except RecursionError:
        raise UserError(f"{source}: metadata {field} is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise UserError(f"{source}: metadata {field} is not valid JSON ({exc})") from None
    depth = nesting_depth(value)
    if depth > MAX_NESTING:
        raise UserError(f"{source}: metadata {field} is nested {depth} levels deep (at most {MAX_NESTING})")
    return value


def nesting_depth(value: Any) -> int:
    """Levels of lists / dicts in a parsed JSON value (0 for a number or string), without recursion."""
    depth, level = 0, [value]
    while level:
        containers = [v for v in level if isinstance(v, (list, dict))]
        if not containers:
            break
        depth += 1
        level = [item for c in containers for item in (c.values() if isinstance(c, dict) else c)]
    return depth


def check_inference_fields(settings, source: str, num_classes: int | None) -> None:
    """The values of an ``InferenceSettings`` read from a file: the resize's sides in
    1..MAX_SIDE (a resize to 1e9 pixels would allocate terabytes), ``min_size <= max_size``,
    the sides the transform uses present, and with ``num_classes`` K ``class_names`` and K
    distinct ``category_ids`` (or none: unknown). UserError naming ``source`` and the field."""
    def bad(key: str, message: str) -> UserError:
        return UserError(f"{source}.{key}: {message}, got {getattr(settings, key)!r}")

    used = {"resize": ("min_size", "max_size"), "fixed": ("fixed_size",)}.get(settings.eval_transform, ())
    for key in ("min_size", "max_size", "fixed_size"):
        value = getattr(settings, key)
        if value is None:
            if key in used:
                raise UserError(f"{source}.{key}: missing (eval_transform {settings.eval_transform!r} needs it)")
        elif not (1 if key in used else 0) <= value <= MAX_SIDE:
            raise bad(key, f"must be in {1 if key in used else 0}..{MAX_SIDE}")
    if settings.eval_transform == "resize" and settings.min_size > settings.max_size:
        raise bad("min_size", f"must be <= max_size ({settings.max_size})")
    if len(set(settings.category_ids)) != len(settings.category_ids):
        raise bad("category_ids", "must be distinct")
    if num_classes is None:
        return
    for key in ("class_names", "category_ids"):
        if getattr(settings, key) and len(getattr(settings, key)) != num_classes:
            raise bad(key, f"must have one entry per class of the model ({num_classes})")


# Model options that count or size something the network is built from: 0 would build a network
# without that part, or none at all. Other integer options (trainable_layers, head_num_convs,
# roi_sampling_ratio, ...) may be 0. No integer option may be negative (torch: "Trying to create
# tensor with negative dimension"), and no number may be NaN or infinite.
POSITIVE_MODEL_OPTIONS = frozenset({
    "depth", "num_classes", "backbone_width", "width", "fpn_channels", "head_channels", "fc_channels",
    "rpn_channels", "image_size", "roi_output_size", "topk_candidates", "max_detections", "box_detections_per_img",
    "rpn_batch_size_per_image", "roi_batch_size_per_image", "rpn_pre_nms_top_n_train", "rpn_post_nms_top_n_train",
    "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test",
})


def check_model_values(args: dict, source: str, integer_options: frozenset[str] | set[str]) -> None:
    """The values of a model config's arguments, one field at a time, before anything is built:
    the options typed as integers (``integer_options``; also lists of them: SSD's
    ``extra_layers``) >= 0, the counts and sizes of ``POSITIVE_MODEL_OPTIONS`` >= 1, every number
    finite. ``ConfigError`` (a UserError) naming ``source``, the field and its value."""
    import math

    from anchordet.config.values import ConfigError
    from anchordet.errors import shown

    for key, value in args.items():
        for number in _numbers(value):
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"{source}: model.{key} must be finite, got {shown(value)}")
            if key in integer_options and isinstance(number, int) and number < (1 if key in POSITIVE_MODEL_OPTIONS else 0):
                bound = ">= 1" if key in POSITIVE_MODEL_OPTIONS else ">= 0"
                raise ConfigError(f"{source}: model.{key} must be {bound}, got {shown(value)}")


def _numbers(value: Any):
    """The ints and floats in a value and in its (nested) lists; booleans are not numbers here."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)
