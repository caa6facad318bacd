"""YOLO (ultralytics) datasets: one ``.txt`` per image, a line ``class cx cy w h`` per object.

Coordinates are normalized to [0, 1] by the image's width and height; the class is an index
into the data YAML's ``names``. As in ultralytics, the label file of ``.../images/x/a.jpg`` is
``.../labels/x/a.txt`` (or ``labels_dir/x/a.txt`` when a labels folder is given); an image
without a label file, or with an empty one, is an image without objects (kept). A line with
more than 5 values is a segmentation polygon ``class x1 y1 x2 y2 ...``: its box is the polygon's
bounding box. Image ids are positions in the sorted image list.
The dataset class (``YoloDataset``) is in ``anchordet.data.datasets``; reading here is torch-free.
"""
from __future__ import annotations

import os
from pathlib import Path

from anchordet.data.image_io import IMAGE_EXTENSIONS, list_images
from anchordet.data.validate import AnnotationRecord, ImageRecord, Problem, RecordSet, read_text
from anchordet.errors import UserError


def image_paths(images) -> list[tuple[Path, Path]]:
    """(image path, folder it is listed under) for a folder, a list file, or a list of them."""
    if isinstance(images, (list, tuple)):
        return [pair for item in images for pair in image_paths(item)]
    path = Path(images)
    if path.is_dir():
        return [(p, path) for p in list_images(path)]
    if path.is_file() and path.suffix == ".txt":
        lines = [line.strip() for line in read_text(path).splitlines() if line.strip()]
        # made absolute without following links (ultralytics joins them so too): an images folder
        # that is a link to another disk stays inside the list's folder (validate.outside_dataset)
        return [(Path(os.path.normpath(path.parent / line)), path.parent) for line in lines]
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        return [(path, path.parent)]
    raise FileNotFoundError(f"YOLO images: not a folder, an image list (.txt) or an image: {path}")


def label_path(image: Path, base: Path, labels_dir: str | os.PathLike | None) -> Path:
    """The label file of ``image`` (see the module docstring)."""
    if labels_dir is not None:
        try:
            return Path(labels_dir) / image.relative_to(base).with_suffix(".txt")
        except ValueError:
            return Path(labels_dir) / (image.stem + ".txt")
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):  # the last "images" folder, as ultralytics' img2label_paths
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_yolo_records(images, labels_dir: str | os.PathLike | None, class_names: list[str]) -> RecordSet:
    """Parse the label files of every image into a normalized ``RecordSet``."""
    if not class_names:
        raise UserError("YOLO dataset: class names are required (the data YAML's 'names')")
    records, problems = [], []
    for image_id, (path, base) in enumerate(image_paths(images)):
        labels = label_path(path, base, labels_dir)
        annotations = _parse_label_file(labels, image_id, problems) if labels.is_file() else []
        records.append(ImageRecord(image_id, path, None, annotations, str(labels), base))
    label_of = {k: k for k in range(len(class_names))}
    return RecordSet(records, list(class_names), list(range(len(class_names))), label_of, True, problems)


def _parse_label_file(path: Path, image_id: int, problems: list[Problem]) -> list[AnnotationRecord]:
    annotations = []
    try:
        text = read_text(path)
    except UserError as exc:  # not UTF-8: the file's problem, listed (and skippable) like a bad line
        problems.append(Problem("malformed", str(path), image_id, None, str(exc).removeprefix(f"{path}: ")))
        return []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parsed = _parse_line(line, number, str(path), image_id)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        else:
            annotations.append(parsed)
    return annotations


def _parse_line(line: str, number: int, source: str, image_id: int) -> AnnotationRecord | Problem:
    """``class cx cy w h`` (or a polygon) -> a normalized xyxy record; the index is the line number."""
    fields = line.split()
    try:
        values = [float(v) for v in fields]
    except ValueError:
        return Problem("malformed", source, image_id, f"line {number}", f"line {line.strip()!r} is not numbers")
    if len(values) == 5:
        cx, cy, w, h = values[1:]
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    elif len(values) >= 7 and len(values) % 2 == 1:
        xs, ys = values[1::2], values[2::2]
        box = (min(xs), min(ys), max(xs), max(ys))
    else:
        return Problem("malformed", source, image_id, f"line {number}",
                       f"line {line.strip()!r} has {len(values)} values; expected 'class cx cy w h'")
    if not values[0].is_integer():
        return Problem("malformed", source, image_id, f"line {number}", f"class {fields[0]!r} is not an integer index")
    return AnnotationRecord(number, int(values[0]), box, False, None, None, source, f"line {line.strip()!r}",
                            f"line {number}")
