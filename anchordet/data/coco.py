"""COCO-format datasets, and ``RecordDataset``: what every file-based reader returns.

A COCO annotation file is JSON with "images" [{id, file_name, width, height}], "annotations"
[{id, image_id, category_id, bbox [x, y, w, h], area, iscrowd}] and "categories" [{id, name}].
Category ids (any integers, COCO's own run 1..90 with gaps) map to labels 0..K-1 in increasing id
order, or in the order of ``class_names`` when given; ``category_ids[k]`` maps back.
``iscrowd`` objects are kept with ``ignore=True`` (ignore regions for training and evaluation).
Images with no objects are kept.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from anchordet.data.collate import Sample
from anchordet.data.image_io import load_image
from anchordet.data.validate import (
    AnnotationRecord, ImageRecord, Problem, RecordSet, check_records, report_or_raise, size_mismatch,
    stated_or_header_size,
)
from anchordet.errors import UserError
from anchordet.files import atomic_write_json
from anchordet.structures.boxes import clip_boxes, nonempty_mask
from anchordet.structures.targets import Targets


class RecordDataset(Dataset):
    """Images and targets from a checked ``RecordSet`` (see ``anchordet.data.validate``).

    ``ds[i]`` is a ``Sample``: the decoded image (3, H, W) float in [0, 1] and its ``Targets``
    (xyxy pixels, labels 0..K-1, ignore = iscrowd / difficult), both after ``transforms``;
    ``orig_size`` is the file's (height, width). Boxes are clipped to the image (they may
    stick out by the tolerance of ``check_annotation``) and boxes left empty are dropped.

    Raises (at construction):
        UserError: naming the file, image id, annotation index and value of the first bad
            annotation, unless ``skip_bad_annotations`` (then each skip is a warning).
    """

    ignore_key = "iscrowd"  # how gt dicts mark ignored objects ("difficult" for VOC)

    def __init__(self, records: RecordSet, transforms=None, skip_bad_annotations: bool = False,
                 what: str = "the annotations"):
        clean, problems = check_records(records)
        report_or_raise(problems, skip_bad_annotations, what)
        self.records = clean
        self.transforms = transforms

    @property
    def class_names(self) -> list[str]:
        return list(self.records.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.records.class_names)

    @property
    def category_ids(self) -> list[int]:
        return list(self.records.category_ids)

    def __len__(self) -> int:
        return len(self.records.images)

    def set_epoch(self, epoch: int) -> None:
        """Files do not change between epochs."""

    def targets_of(self, index: int, size: tuple[int, int]) -> Targets:
        """Targets of image ``index`` in the pixels of an image of ``size`` (height, width)."""
        anns = self.records.images[index].annotations
        boxes = torch.tensor([a.box for a in anns], dtype=torch.float64).reshape(-1, 4)
        if self.records.normalized:
            boxes = boxes * torch.tensor([size[1], size[0], size[1], size[0]], dtype=torch.float64)
        boxes = clip_boxes(boxes.float(), size)
        labels = torch.tensor([self.records.label_of[a.category] for a in anns], dtype=torch.int64)
        ignore = torch.tensor([a.ignore for a in anns], dtype=torch.bool)
        return Targets(boxes, labels, ignore).select(nonempty_mask(boxes))

    def __getitem__(self, index: int) -> Sample:
        record = self.records.images[index]
        image = load_image(record.path)
        size = (int(image.shape[1]), int(image.shape[2]))
        mismatch = size_mismatch(record, size)
        if mismatch is not None:  # boxes would be in another frame: never train on that silently
            raise UserError(str(mismatch))
        targets = self.targets_of(index, size)
        if self.transforms is not None:
            image, targets = self.transforms(image, targets)
        return Sample(image, targets, record.image_id, size, str(record.path))

    def coco_ground_truth(self) -> dict:
        """COCO gt dict of this split in original image pixels (image ids = ``Sample.image_id``).

        Normalized (YOLO) records are scaled by the image header's size (no decoding).
        """
        images, annotations = [], []
        for record in self.records.images:
            height, width = stated_or_header_size(record)
            images.append({"id": record.image_id, "file_name": _relative_name(record.path, self.image_root),
                           "width": width, "height": height})
            scale = (width, height, width, height) if self.records.normalized else (1, 1, 1, 1)
            for ann in record.annotations:
                x1, y1, x2, y2 = (v * s for v, s in zip(ann.box, scale))
                entry = {"id": ann.annotation_id if ann.annotation_id is not None else len(annotations) + 1,
                         "image_id": record.image_id, "category_id": self.records.category_ids[
                             self.records.label_of[ann.category]],
                         "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "area": ann.area if ann.area is not None else (x2 - x1) * (y2 - y1), "iscrowd": 0}
                if ann.ignore:
                    entry[self.ignore_key] = 1
                annotations.append(entry)
        categories = [{"id": c, "name": n} for c, n in zip(self.records.category_ids, self.records.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    @property
    def image_root(self) -> Path | None:
        """Folder that gt ``file_name``s are relative to (None: absolute names)."""
        return None


def _relative_name(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


class CocoDataset(RecordDataset):
    """A COCO-format split.

    Args:
        images_dir: folder that the JSON's ``file_name``s are relative to.
        annotation_file: the COCO JSON.
        transforms: ``(image, targets) -> (image, targets)``.
        class_names: optional; label k is the category named ``class_names[k]``.
        skip_bad_annotations: warn and skip bad annotations / images instead of raising.
    """

    def __init__(self, images_dir: str | os.PathLike, annotation_file: str | os.PathLike, transforms=None,
                 class_names: list[str] | None = None, skip_bad_annotations: bool = False):
        self.images_dir = Path(images_dir)
        records = read_coco_records(annotation_file, images_dir, class_names)
        super().__init__(records, transforms, skip_bad_annotations, what=str(annotation_file))

    @property
    def image_root(self) -> Path:
        return self.images_dir


def load_coco_json(path: str | os.PathLike) -> dict:
    """Parse a COCO JSON; errors name the file and the missing key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from exc
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
            raise UserError(f"{path}: categories[{i}] must have an integer 'id' and a 'name', got {cat!r}")
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
    """Parse a COCO JSON into a ``RecordSet`` (malformed entries become problems)."""
    source = str(annotation_file)
    data = load_coco_json(annotation_file)
    names, ids = coco_categories(data, annotation_file, class_names)
    problems: list[Problem] = []
    images: dict[int, ImageRecord] = {}
    records = []
    for i, entry in enumerate(data["images"]):
        if not (isinstance(entry, dict) and isinstance(entry.get("id"), int) and isinstance(entry.get("file_name"), str)
                and isinstance(entry.get("width"), int) and isinstance(entry.get("height"), int)):
            problems.append(Problem("malformed", source, None, None,
                                    f"images[{i}] needs an integer id, width, height and a file_name: {entry!r}"))
            continue
        record = ImageRecord(entry["id"], Path(images_dir) / entry["file_name"], (entry["height"], entry["width"]),
                             [], source)
        records.append(record)
        images.setdefault(record.image_id, record)  # a duplicate id is reported by check_records
    for i, ann in enumerate(data["annotations"]):
        parsed = _parse_coco_annotation(i, ann, source)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        elif ann["image_id"] not in images:
            problems.append(Problem("unknown-image-id", source, ann["image_id"], i,
                                    f"annotation's image_id {ann['image_id']} is not in 'images'"))
        else:
            images[ann["image_id"]].annotations.append(parsed)
    return RecordSet(records, names, ids, {cid: k for k, cid in enumerate(ids)}, False, problems)


def _parse_coco_annotation(index: int, ann, source: str) -> AnnotationRecord | Problem:
    bbox = ann.get("bbox") if isinstance(ann, dict) else None
    image_id = ann.get("image_id") if isinstance(ann, dict) else None
    if not isinstance(image_id, int) or "category_id" not in ann:
        return Problem("malformed", source, None, index, f"needs an integer image_id and a category_id: {ann!r}")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        return Problem("malformed", source, image_id, index, f"bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    area = ann.get("area")
    return AnnotationRecord(index, ann["category_id"], (x, y, x + w, y + h), bool(ann.get("iscrowd", 0)),
                            float(area) if _is_number(area) else None, ann.get("id"), source,
                            f"bbox {json.dumps(bbox)} (x, y, w, h)")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_coco_json(path: str | os.PathLike, gt: dict) -> Path:
    """Write a COCO dict atomically (a crash never leaves half a file)."""
    return atomic_write_json(path, gt)
