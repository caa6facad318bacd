"""COCO-format annotation files: reading them into a ``RecordSet`` (torch-free) and writing them.

A COCO annotation file is JSON with "images" [{id, file_name, width, height}], "annotations"
[{id, image_id, category_id, bbox [x, y, w, h], area, iscrowd}] and "categories" [{id, name}].
Category ids (any integers, COCO's own run 1..90 with gaps) map to labels 0..K-1 in increasing id
order, or in the order of ``class_names`` when given; ``category_ids[k]`` maps back.
``iscrowd`` objects are kept with ``ignore=True`` (ignore regions for training and evaluation);
``iscrowd`` must be 0 or 1 (or true / false) and ``area`` a number >= 0, anything else is a
problem. Problems name an annotation by its ``id``.
Images with no objects are kept. The dataset class (``CocoDataset``) is in ``anchordet.data.datasets``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from anchordet.data.validate import AnnotationRecord, ImageRecord, Problem, RecordSet
from anchordet.errors import UserError, shown
from anchordet.files import atomic_write_json, load_json, paused_gc


def load_coco_json(path: str | os.PathLike) -> dict:
    """Parse a COCO JSON; errors (malformed JSON, a missing list) name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    data = load_json(path)  # orjson, gc paused: a third of json.load's time (BENCHMARKS.md)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a COCO annotation file is a JSON object, got {type(data).__name__}")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise UserError(f"{path}: missing the list {key!r} (COCO format: images, annotations, categories)")
    data.setdefault("annotations", [])
    return data


def coco_categories(data: dict, path: str | os.PathLike, class_names: list[str] | None = None) -> tuple[list[str], list[int]]:
    """(class names, category ids) for labels 0..K-1: by increasing id, or in ``class_names`` order."""
    by_id: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or "name" not in cat:
            raise UserError(f"{path}: categories[{i}] must have an integer 'id' and a 'name', got {shown(cat)}")
        if cat["id"] in by_id:
            raise UserError(f"{path}: categories[{i}]: category id {cat['id']} is used twice")
        by_id[cat["id"]] = str(cat["name"])
    if class_names is None:
        ids = sorted(by_id)
        return [by_id[i] for i in ids], ids
    id_of = {name: cid for cid, name in by_id.items()}
    repeated = [n for n in class_names if list(by_id.values()).count(n) > 1]
    if repeated:
        raise UserError(f"{path}: category name {repeated[0]!r} is used by several category ids")
    missing = [n for n in class_names if n not in id_of]
    if missing:
        raise UserError(f"{path}: class names {missing} are not among its categories {sorted(id_of)}")
    return list(class_names), [id_of[n] for n in class_names]


def read_coco_records(annotation_file: str | os.PathLike, images_dir: str | os.PathLike,
                      class_names: list[str] | None = None) -> RecordSet:
    """Parse a COCO JSON into a ``RecordSet`` (malformed entries become problems).

    Speed: COCO train2017 holds 860k annotations, so the per-annotation work is kept to type
    checks and one record, with the garbage collector paused; the texts that quote an entry in
    messages are built only when a message is (``_WrittenBbox``). ``benchmarks/coco_load.py``
    measures it against pycocotools."""
    # the collector's passes over millions of fresh objects would cost more than the parse
    with paused_gc():
        return _records_of(load_coco_json(annotation_file), annotation_file, images_dir, class_names)


def _records_of(data: dict, annotation_file: str | os.PathLike, images_dir: str | os.PathLike,
                class_names: list[str] | None) -> RecordSet:
    source = str(annotation_file)
    names, ids = coco_categories(data, annotation_file, class_names)
    problems: list[Problem] = []
    images: dict[int, ImageRecord] = {}
    records = []
    root = Path(images_dir)
    for i, entry in enumerate(data["images"]):
        if not (isinstance(entry, dict) and isinstance(entry.get("id"), int) and isinstance(entry.get("file_name"), str)
                and isinstance(entry.get("width"), int) and isinstance(entry.get("height"), int)):
            problems.append(Problem("malformed", source, None, None,
                                    f"images[{i}] needs an integer id, width, height and a file_name: {shown(entry)}"))
            continue
        record = ImageRecord(entry["id"], root / entry["file_name"], (entry["height"], entry["width"]), [], source,
                             root)
        records.append(record)
        images.setdefault(record.image_id, record)  # a duplicate id is reported by check_records
    image_of_annotation: dict[int, int] = {}  # annotation id -> image id: evaluation tells objects apart by id
    for i, ann in enumerate(data["annotations"]):
        parsed = _parse_coco_annotation(i, ann, source)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        elif ann["image_id"] not in images:
            problems.append(Problem("unknown-image-id", source, ann["image_id"], parsed.name,
                                    f"annotation's image_id {ann['image_id']} is not in 'images'"))
        elif parsed.annotation_id is not None and parsed.annotation_id in image_of_annotation:
            first = image_of_annotation[parsed.annotation_id]
            problems.append(Problem("duplicate-annotation-id", source, ann["image_id"], parsed.name,
                                    f"annotation id {parsed.annotation_id} is used twice (first in image {first})"))
        else:
            if parsed.annotation_id is not None:
                image_of_annotation[parsed.annotation_id] = ann["image_id"]
            images[ann["image_id"]].annotations.append(parsed)
    return RecordSet(records, names, ids, {cid: k for k, cid in enumerate(ids)}, False, problems)


_NUMBER_TYPES = frozenset({int, float})  # by exact type: bool (an int) is not a number here


class _WrittenBbox:
    """``AnnotationRecord.written`` of a COCO annotation: the text ``bbox [x, y, w, h] (x, y, w, h)``,
    made when a message quotes it (``json.dumps`` for every annotation took a third of the parse)."""

    __slots__ = ("bbox",)

    def __init__(self, bbox: list):
        self.bbox = bbox

    def __str__(self) -> str:
        return f"bbox {json.dumps(self.bbox)} (x, y, w, h)"

    def __eq__(self, other) -> bool:
        return str(self) == str(other)

    __hash__ = None


def _annotation_ref(index: int, ann_id) -> str:
    """How messages name an annotation: by its "id" (what users search the file for), or by its
    position when it has none."""
    return f"annotation id {ann_id}" if isinstance(ann_id, (int, str)) and not isinstance(ann_id, bool) \
        else f"annotations[{index}]"


def _parse_coco_annotation(index: int, ann, source: str) -> AnnotationRecord | Problem:
    """One entry of "annotations"; messages name it by its "id" (``_annotation_ref``)."""
    if not isinstance(ann, dict):
        return Problem("malformed", source, None, _annotation_ref(index, None),
                       f"needs an integer image_id and a category_id: {shown(ann)}")
    ann_id = ann.get("id")
    bbox, image_id = ann.get("bbox"), ann.get("image_id")
    if not isinstance(image_id, int) or "category_id" not in ann:
        return Problem("malformed", source, None, _annotation_ref(index, ann_id),
                       f"needs an integer image_id and a category_id: {shown(ann)}")
    if not (type(bbox) is list and len(bbox) == 4 and _NUMBER_TYPES.issuperset(map(type, bbox))):
        return Problem("malformed", source, image_id, _annotation_ref(index, ann_id),
                       f"bbox must be 4 numbers [x, y, w, h], got {shown(bbox)}")
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):  # True / False pass (bool is an int); "0", "yes" do not
        return Problem("malformed", source, image_id, _annotation_ref(index, ann_id),
                       f"iscrowd must be 0 or 1, got {shown(crowd)}")
    area = ann.get("area")
    if area is not None and not (type(area) in _NUMBER_TYPES and math.isfinite(area) and area >= 0):
        return Problem("malformed", source, image_id, _annotation_ref(index, ann_id),
                       f"area must be a number >= 0, got {shown(area)}")
    x, y, w, h = map(float, bbox)
    return AnnotationRecord(index, ann["category_id"], (x, y, x + w, y + h), bool(crowd),
                            None if area is None else float(area), ann_id if type(ann_id) is int else None,
                            source, _WrittenBbox(bbox), _annotation_ref(index, ann_id))


def write_coco_json(path: str | os.PathLike, gt: dict) -> Path:
    """Write a COCO dict atomically (a crash never leaves half a file)."""
    return atomic_write_json(path, gt)
