"""Checking what a weights file says about itself, before anything is built from it.

A ``.safetensors`` file written by anchordet carries two JSON strings in its metadata:
``anchordet_model`` (the factory and its arguments) and ``anchordet_inference`` (the eval resize,
class names and category ids). Anyone can write a file, so both are input like any other: every
value is checked here (type, range, length) and a bad one is a ``UserError`` of one line naming
the file and the field. Bounds keep a bad file from allocating what no real model needs
(``MAX_PARAMETERS`` is checked on the meta device by ``anchordet.engine.checkpoint``).

Torch-free: the functions take parsed values and the file name, so other loaders (an
``InferenceSettings`` constructor) can call them.
"""
from __future__ import annotations

import json
import math
from typing import Any

from anchordet.errors import UserError

# No model here comes near: LVIS has 1203 classes, Objects365 365.
MAX_CLASSES = 100_000
# Faster R-CNN VGG16 (the largest model here) has 137 M; 1e9 float32 parameters are 4 GB.
MAX_PARAMETERS = 1_000_000_000
# Image sides of the eval resize: image_io.MAX_PIXELS allows 8192 x 8192 images.
MAX_SIDE = 8192
# anchor_sizes, a list of lists inside the model dict, is 3 deep.
MAX_NESTING = 6
EVAL_TRANSFORMS = ("resize", "fixed", "none")


def parse_json_field(text: Any, source: str, field: str) -> Any:
    """``json.loads(text)`` with errors naming the file and the field; too deep nesting refused."""
    if not isinstance(text, str):
        raise UserError(f"{source}: metadata {field!r} must be a JSON string, got {type(text).__name__}")
    try:
        value = json.loads(text)
    except RecursionError:
        raise UserError(f"{source}: metadata {field!r} is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise UserError(f"{source}: metadata {field!r} is not valid JSON ({exc})") from None
    depth = nesting_depth(value)
    if depth > MAX_NESTING:
        raise UserError(f"{source}: metadata {field!r} is nested {depth} levels deep (at most {MAX_NESTING})")
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


def model_values(value: Any, source: str) -> tuple[str, dict]:
    """(factory, arguments) from the parsed ``anchordet_model`` value, checked against the
    factory's signature and ``MAX_CLASSES`` (``check_model_args``)."""
    from anchordet.config.schema import ConfigError, check_model_args, model_factory

    if not isinstance(value, dict):
        raise UserError(f"{source}: metadata 'anchordet_model' must be a JSON object, got {type(value).__name__}")
    args = dict(value)
    factory = args.pop("factory", None)
    if not isinstance(factory, str):
        raise UserError(f"{source}: metadata 'anchordet_model' has no 'factory' (the detector function's name)")
    try:
        model_factory(factory)
        check_model_args(factory, args, f"{source}: metadata 'anchordet_model'")
    except ConfigError as exc:
        message = str(exc)
        raise UserError(message if message.startswith(source) else f"{source}: {message}") from None
    return factory, args


def check_inference_settings(values: Any, source: str, num_classes: int) -> dict:
    """The inference settings (``anchordet_inference`` of a weights file, or a checkpoint's),
    checked: the resize sides the transform uses in 1..MAX_SIDE, ``class_names`` K strings,
    ``category_ids`` K distinct integers, the digits options non-negative integers.

    Returns the same dict. Keys it does not know are kept (files from newer versions)."""
    if not isinstance(values, dict):
        raise UserError(f"{source}: the inference settings must be a JSON object, got {type(values).__name__}")

    def bad(key: str, message: str) -> UserError:
        return UserError(f"{source}: inference setting {key!r} {message}, got {values[key]!r}")

    kind = values.get("eval_transform", "none")
    if kind is None:
        kind = "none"
    if kind not in EVAL_TRANSFORMS:
        raise bad("eval_transform", f"must be one of {', '.join(EVAL_TRANSFORMS)}")
    used = {"resize": ("min_size", "max_size"), "fixed": ("fixed_size",), "none": ()}[kind]
    for key in ("min_size", "max_size", "fixed_size"):
        if key in used and key not in values:
            raise UserError(f"{source}: inference setting {key!r} is missing (eval_transform {kind!r} needs it)")
        if key in values and not _int_in(values[key], 1 if key in used else 0, MAX_SIDE):
            raise bad(key, f"must be an integer in {1 if key in used else 0}..{MAX_SIDE}")
    if kind == "resize" and values["min_size"] > values["max_size"]:
        raise bad("min_size", f"must be <= max_size ({values['max_size']})")
    if "class_names" in values and values["class_names"] is not None:
        names = values["class_names"]
        if not isinstance(names, list) or len(names) != num_classes or not all(isinstance(n, str) for n in names):
            raise bad("class_names", f"must be a list of {num_classes} strings (the model's classes)")
    if "category_ids" in values and values["category_ids"] is not None:
        ids = values["category_ids"]
        if (not isinstance(ids, list) or len(ids) != num_classes
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) or len(set(ids)) != len(ids)):
            raise bad("category_ids", f"must be a list of {num_classes} distinct integers (one per class)")
    if "dataset" in values and not isinstance(values["dataset"], str):
        raise bad("dataset", "must be a string")
    for key in [k for k in values if k.startswith("digits_")]:
        if not _int_in(values[key], 0, 10**7):
            raise bad(key, "must be a non-negative integer")
    return values


def num_classes_ok(value: Any) -> bool:
    """``model.num_classes`` must be an integer in 1..MAX_CLASSES."""
    return _int_in(value, 1, MAX_CLASSES)


def _int_in(value: Any, low: int, high: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return isinstance(value, int) and low <= value <= high
