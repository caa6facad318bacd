"""``anchordet data convert``: write any readable dataset in COCO, VOC, YOLO or CSV form, with its data.yaml.

Every split of the source (a dataset YAML, or ``digits``) is read as the trainer reads it (bad
annotations stop the conversion, naming them, as they would stop training), into pixel boxes
``x1, y1, x2, y2``, labels and ignore flags, then written:

| to | layout under ``--out`` | boxes written as | ignore flags | images without objects |
| --- | --- | --- | --- | --- |
| coco | ``images/<split>/``, ``annotations/instances_<split>.json`` | ``bbox [x, y, w, h]`` floats (exact) | ``iscrowd: 1`` | kept |
| voc | ``JPEGImages/``, ``Annotations/``, ``ImageSets/Main/<split>.txt`` | 1-based integers (0.5 px) | ``<difficult>1`` | kept |
| yolo | ``images/<split>/``, ``labels/<split>/`` | ``class cx cy w h``, 6 decimals | dropped (no flag in the format) | empty label file |
| csv | ``images/<split>/``, ``<split>.csv``, ``classes.csv`` | integers (0.5 px), as yhenon reads them | dropped (no flag in the format) | ``path,,,,,`` row |
| deepforest | ``<split>/`` with the images and ``<split>/annotations.csv`` (header ``image_path,xmin,ymin,xmax,ymax,label``, file names) | integers (0.5 px) | dropped (no flag in the format) | ``name,0,0,0,0,<first class>`` row |

Integer formats round each coordinate to the nearest pixel edge and keep a box at least 1 pixel
wide and high. Class names and their order are kept (``names`` in the data.yaml); COCO keeps the
source's category ids and areas (annotation ids are renumbered), the CSV class list numbers the
classes 0..K-1. Image files are copied
(or hard-linked with ``link=True``); generated digits scenes are written as PNG. Image ids: COCO
keeps the source's; VOC, YOLO and CSV number images by position, as their readers do.

Nothing is half written: everything goes into a temporary folder next to ``--out``, renamed to
``--out`` at the end (removed on any error).
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from anchordet.errors import UserError

TARGET_FORMATS = ("coco", "voc", "yolo", "csv", "deepforest")


@dataclass
class ConvertImage:
    """One image to write.

    Attributes:
        image_id: the source's id.
        name: file name to write (unique within the split).
        size: (height, width).
        boxes: (x1, y1, x2, y2) in pixels; labels: 0..K-1; ignore: iscrowd / difficult;
            areas: COCO's ``area`` where the source has one (else None: the box's).
        source: the image file, or None for a generated image (then ``render(path)`` writes it).
        listed_in: the annotation file that names ``source`` (for messages).
    """

    image_id: int
    name: str
    size: tuple[int, int]
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    ignore: list[bool] = field(default_factory=list)
    areas: list[float | None] = field(default_factory=list)
    source: Path | None = None
    render: Callable[[Path], None] | None = None
    listed_in: str = ""


@dataclass
class ConvertSplit:
    name: str
    images: list[ConvertImage]


@dataclass
class ConvertSource:
    class_names: list[str]
    category_ids: list[int]
    splits: list[ConvertSplit]


# ----------------------------------------------------------------------------------- reading
def read_source(spec) -> ConvertSource:
    """Every split of a ``DatasetSpec`` as pixel boxes and labels (digits scenes of epoch 0)."""
    if spec.format == "digits":
        return _read_digits(spec)
    from anchordet.data.spec import read_records
    from anchordet.data.validate import check_records, report_or_raise

    splits, category_ids = [], None
    for split in spec.splits:
        records, problems = check_records(read_records(spec, split))
        report_or_raise(problems, False, f"the {split} split of {spec.source}")
        category_ids = category_ids or list(records.category_ids)
        splits.append(ConvertSplit(split, _images_of(records)))
    return ConvertSource(list(spec.class_names), category_ids, splits)


def _images_of(records) -> list[ConvertImage]:
    from anchordet.data.validate import stated_or_header_size

    images, used = [], set()
    for record in records.images:
        height, width = stated_or_header_size(record)
        name = record.path.name if record.path.name not in used else f"{record.image_id}_{record.path.name}"
        used.add(name)
        scale = (width, height, width, height) if records.normalized else (1, 1, 1, 1)
        image = ConvertImage(record.image_id, name, (height, width), source=record.path, listed_in=record.source)
        for ann in record.annotations:
            box = tuple(min(max(v * s, 0.0), limit) for v, s, limit in zip(ann.box, scale, (width, height) * 2))
            if box[2] <= box[0] or box[3] <= box[1]:
                continue  # nothing of it inside the image (the trainer drops it too)
            image.boxes.append(box)
            image.labels.append(records.label_of[ann.category])
            image.ignore.append(bool(ann.ignore))
            image.areas.append(ann.area)
        images.append(image)
    return images


def _read_digits(spec) -> ConvertSource:
    from anchordet.data.digits import DigitsDataset
    from anchordet.visualize import to_pil

    splits = []
    for split in ("train", "val"):
        dataset = DigitsDataset(split, spec.digits)
        side = spec.digits.canvas_size
        images = []
        for index in range(len(dataset)):
            targets = dataset.read_annotations(index)
            images.append(ConvertImage(
                index, dataset.file_name(index), (side, side), [tuple(b) for b in targets.boxes.tolist()],
                targets.labels.tolist(), targets.ignore.tolist(), [None] * len(targets),
                render=lambda path, i=index, ds=dataset: to_pil(ds.scene(i)[0]).save(path)))
        splits.append(ConvertSplit(split, images))
    return ConvertSource(list(dataset.class_names), list(dataset.category_ids), splits)


# ----------------------------------------------------------------------------------- writing
def convert(spec, to: str, out: str | os.PathLike, link: bool = False) -> dict[str, dict[str, int]]:
    """Write ``spec``'s dataset in format ``to`` under ``out`` (which must not exist, or be an
    empty folder). Returns per split {"images", "boxes", "dropped_ignored"}.

    Raises:
        UserError: unknown format, ``out`` not empty, or a bad source annotation.
    """
    if to not in TARGET_FORMATS:
        raise UserError(f"--to {to!r}: choose one of {', '.join(TARGET_FORMATS)}")
    out = Path(out)
    check_new_folder(out)
    source = read_source(spec)

    def write(temp: Path) -> dict:
        counts = WRITERS[to](source, temp, link)
        _write_text(temp / "data.yaml", yaml.safe_dump(_data_yaml(to, source), sort_keys=False))
        return counts

    return write_new_folder(out, write)


def check_new_folder(out: Path, option: str = "--out") -> None:
    """Refuse an ``out`` that exists and is not an empty folder (a dataset is never written over)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{option} {out}: exists and is not an empty folder (a dataset is never written over)")


def write_new_folder(out: Path, write: Callable[[Path], dict]) -> dict:
    """Run ``write(temp)`` on a temporary folder next to ``out``, then rename it to ``out`` (an
    empty ``out`` is replaced); on any error the temporary folder is removed: nothing half written."""
    check_new_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    try:
        result = write(temp)
        if out.exists():
            out.rmdir()  # the empty folder given as --out
        os.replace(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return result


def _data_yaml(to: str, source: ConvertSource) -> dict:
    names = list(source.class_names)
    splits = [s.name for s in source.splits]
    if to == "coco":
        entries = {s: {"images": f"images/{s}", "annotations": f"annotations/instances_{s}.json"} for s in splits}
        return {"format": "coco", "root": ".", "names": names, **entries}
    if to == "voc":
        return {"format": "voc", "root": ".", "names": names, **{s: {"image_set": s} for s in splits}}
    if to == "yolo":
        return {"format": "yolo", "root": ".", "names": names,
                **{s: {"images": f"images/{s}", "labels": f"labels/{s}"} for s in splits}}
    if to == "deepforest":
        return {"format": "csv", "root": ".", "names": names,
                **{s: {"annotations": f"{s}/annotations.csv", "images": s} for s in splits}}
    return {"format": "csv", "root": ".", "classes": "classes.csv", **{s: f"{s}.csv" for s in splits}}


def _put_image(image: ConvertImage, path: Path, link: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.source is None:
        image.render(path)
        return
    _verify_image(image)
    if link:
        try:
            os.link(image.source, path)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copyfile(image.source, path)


def _verify_image(image: ConvertImage) -> None:
    """Refuse to copy a file that is not an image: COCO and VOC state the sizes, so nothing else
    would ever open it, and a converted dataset must not carry whatever file an annotation named
    (the header is read, with the pixel limit of ``image_io``; no decoding)."""
    from anchordet.data.image_io import ImageReadError, image_size

    try:
        image_size(image.source)
    except ImageReadError as exc:
        raise UserError(f"{image.listed_in}, image {image.image_id}: {exc}; not copied") from exc


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _pixel_edges(box) -> tuple[int, int, int, int]:
    """A box rounded to whole pixel edges, at least 1 pixel wide and high."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def _count(split: ConvertSplit, written: int, dropped: int) -> dict[str, int]:
    return {"images": len(split.images), "boxes": written, "dropped_ignored": dropped}


def _write_coco(source: ConvertSource, out: Path, link: bool) -> dict:
    counts = {}
    categories = [{"id": c, "name": n} for c, n in zip(source.category_ids, source.class_names)]
    for split in source.splits:
        images, annotations = [], []
        for image in split.images:
            _put_image(image, out / "images" / split.name / image.name, link)
            images.append({"id": image.image_id, "file_name": image.name, "height": image.size[0],
                           "width": image.size[1]})
            for (x1, y1, x2, y2), label, ignore, area in zip(image.boxes, image.labels, image.ignore, image.areas):
                annotations.append({"id": len(annotations) + 1, "image_id": image.image_id,
                                    "category_id": source.category_ids[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                    "area": area if area is not None else (x2 - x1) * (y2 - y1),
                                    "iscrowd": int(ignore)})
        gt = {"images": images, "annotations": annotations, "categories": categories}
        _write_text(out / "annotations" / f"instances_{split.name}.json", json.dumps(gt))
        counts[split.name] = _count(split, len(annotations), 0)
    return counts


def _write_voc(source: ConvertSource, out: Path, link: bool) -> dict:
    counts, stems = {}, set()
    for split in source.splits:
        listed, boxes = [], 0
        for image in split.images:
            stem = Path(image.name).stem
            if stem in stems:  # one Annotations folder for every split: stems must be unique
                stem = f"{split.name}_{image.image_id}_{stem}"
            stems.add(stem)
            file_name = stem + Path(image.name).suffix
            _put_image(image, out / "JPEGImages" / file_name, link)
            _write_text(out / "Annotations" / f"{stem}.xml", _voc_xml(image, file_name, source.class_names))
            listed.append(stem)
            boxes += len(image.boxes)
        _write_text(out / "ImageSets" / "Main" / f"{split.name}.txt", "".join(f"{s}\n" for s in listed))
        counts[split.name] = _count(split, boxes, 0)
    return counts


def _voc_xml(image: ConvertImage, file_name: str, class_names: list[str]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = file_name
    size = ET.SubElement(root, "size")
    for key, value in (("width", image.size[1]), ("height", image.size[0]), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    for box, label, ignore in zip(image.boxes, image.labels, image.ignore):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = class_names[label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = str(int(ignore))
        x1, y1, x2, y2 = _pixel_edges(box)
        bndbox = ET.SubElement(obj, "bndbox")  # 1-based inclusive pixel indices (data/voc.py)
        for key, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bndbox, key).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _write_yolo(source: ConvertSource, out: Path, link: bool) -> dict:
    counts = {}
    for split in source.splits:
        boxes = dropped = 0
        for image in split.images:
            _put_image(image, out / "images" / split.name / image.name, link)
            height, width = image.size
            lines = []
            for (x1, y1, x2, y2), label, ignore in zip(image.boxes, image.labels, image.ignore):
                if ignore:
                    dropped += 1
                    continue
                values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
                lines.append(f"{label} " + " ".join(f"{v:.6f}" for v in values))
            boxes += len(lines)
            _write_text(out / "labels" / split.name / (Path(image.name).stem + ".txt"), "".join(f"{l}\n" for l in lines))
        counts[split.name] = _count(split, boxes, dropped)
    return counts


def _write_csv(source: ConvertSource, out: Path, link: bool) -> dict:
    counts = {}
    _write_text(out / "classes.csv", "".join(f"{name},{k}\n" for k, name in enumerate(source.class_names)))
    for split in source.splits:
        buffer, boxes, dropped = io.StringIO(), 0, 0
        writer = csv.writer(buffer, lineterminator="\n")
        for image in split.images:
            relative = f"images/{split.name}/{image.name}"
            _put_image(image, out / relative, link)
            kept = [(b, label) for b, label, ignore in zip(image.boxes, image.labels, image.ignore) if not ignore]
            dropped += len(image.boxes) - len(kept)
            for box, label in kept:
                writer.writerow([relative, *_pixel_edges(box), source.class_names[label]])
            if not kept:
                writer.writerow([relative, "", "", "", "", ""])
            boxes += len(kept)
        _write_text(out / f"{split.name}.csv", buffer.getvalue())
        counts[split.name] = _count(split, boxes, dropped)
    return counts


def _write_deepforest(source: ConvertSource, out: Path, link: bool) -> dict:
    """DeepForest's CSV: a header, file names relative to the CSV's folder (the split's, holding
    the images), ``0,0,0,0`` rows for images without objects."""
    from anchordet.data.csv_format import DEEPFOREST_COLUMNS

    counts = {}
    for split in source.splits:
        buffer, boxes, dropped = io.StringIO(), 0, 0
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(DEEPFOREST_COLUMNS)
        for image in split.images:
            _put_image(image, out / split.name / image.name, link)
            kept = [(b, label) for b, label, ignore in zip(image.boxes, image.labels, image.ignore) if not ignore]
            dropped += len(image.boxes) - len(kept)
            for box, label in kept:
                writer.writerow([image.name, *_pixel_edges(box), source.class_names[label]])
            if not kept:
                writer.writerow([image.name, 0, 0, 0, 0, source.class_names[0]])
            boxes += len(kept)
        _write_text(out / split.name / "annotations.csv", buffer.getvalue())
        counts[split.name] = _count(split, boxes, dropped)
    return counts


WRITERS = {"coco": _write_coco, "voc": _write_voc, "yolo": _write_yolo, "csv": _write_csv,
           "deepforest": _write_deepforest}
