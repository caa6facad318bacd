"""Pascal VOC datasets: ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml``, ``ImageSets/Main/<set>.txt``.

Coordinates: VOC writes 1-based inclusive pixel indices (xmin = 1 is the first column), so the
continuous box is ``(xmin - 1, ymin - 1, xmax, ymax)`` in anchordet's 0-based pixel-edge frame
(as Detectron and mmdetection do). ``difficult`` objects are kept with ``ignore=True`` and
written as ``"difficult": 1`` in the gt dict, so the VOC evaluator ignores them as the devkit
does. Image ids are the positions in the image-set file (0, 1, ...); ``file_name`` keeps the name.
Several (root, image set) pairs read as one split (VOC 07 trainval + 12 trainval, the usual
training set): ``read_voc_sets``, image ids running on from one set to the next.
The dataset class (``VocDataset``) is in ``anchordet.data.datasets``; reading here is torch-free.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from anchordet.data.validate import AnnotationRecord, ImageRecord, Problem, RecordSet, read_text
from anchordet.errors import UserError


def read_voc_records(root: str | os.PathLike, image_set: str, class_names: list[str]) -> RecordSet:
    """Parse a VOC image set into a ``RecordSet`` (unreadable XML files become problems)."""
    return read_voc_sets([(root, image_set)], class_names)


def read_voc_sets(sets: Sequence[tuple[str | os.PathLike, str]], class_names: list[str]) -> RecordSet:
    """Parse several (root, image set) pairs into one ``RecordSet``: the images of each set in
    turn, image ids 0, 1, ... over all of them (so 07 and 12 ids never collide)."""
    if not class_names:
        raise UserError(f"VOC dataset {Path(sets[0][0]) if sets else ''}: class names are required "
                        "(VOC files name the classes)")
    stems = []
    for root, image_set in sets:
        set_file = Path(root) / "ImageSets" / "Main" / f"{image_set}.txt"
        if not set_file.is_file():
            raise FileNotFoundError(f"VOC image set file not found: {set_file}")
        lines = read_text(set_file).splitlines()
        stems += [(Path(root), line.split()[0]) for line in lines if line.strip()]
    records, problems = [], []
    for image_id, (root, stem) in enumerate(stems):
        parsed = _parse_voc_xml(root, stem, image_id, problems)
        if parsed is not None:
            records.append(parsed)
    label_of = {name: k for k, name in enumerate(class_names)}
    return RecordSet(records, list(class_names), list(range(len(class_names))), label_of, False, problems)


def _parse_voc_xml(root: Path, stem: str, image_id: int, problems: list[Problem]) -> ImageRecord | None:
    """The image's record, or None if its XML is unusable; problems are appended to ``problems``."""
    xml_path = root / "Annotations" / f"{stem}.xml"
    source = str(xml_path)
    try:
        tree = ET.parse(xml_path)
    except FileNotFoundError:
        problems.append(Problem("malformed", source, image_id, None, f"annotation file not found for image {stem!r}"))
        return None
    except ET.ParseError as exc:
        problems.append(Problem("malformed", source, image_id, None, f"not valid XML ({exc})"))
        return None
    node = tree.getroot()
    size = None
    try:
        size_node = node.find("size")
        if size_node is not None:
            size = (int(size_node.findtext("height")), int(size_node.findtext("width")))
    except (TypeError, ValueError):
        problems.append(Problem("malformed", source, image_id, None, "<size> needs integer <width> and "
                                f"<height>: {ET.tostring(size_node, 'unicode').strip()!r}"))
        return None
    image_path = root / "JPEGImages" / f"{stem}.jpg"
    filename = node.findtext("filename")
    if not image_path.is_file() and filename:
        image_path = root / "JPEGImages" / filename.strip()
    annotations = []
    for index, obj in enumerate(node.findall("object")):
        parsed = _parse_voc_object(obj, index, source, image_id)
        if isinstance(parsed, Problem):
            problems.append(parsed)  # only this object is dropped
        else:
            annotations.append(parsed)
    return ImageRecord(image_id, image_path, size, annotations, source, root)


def _parse_voc_object(obj: ET.Element, index: int, source: str, image_id: int) -> AnnotationRecord | Problem:
    name = (obj.findtext("name") or "").strip()
    box = obj.find("bndbox")
    try:
        xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (AttributeError, TypeError, ValueError):
        text = ET.tostring(box, "unicode").strip() if box is not None else "no <bndbox>"
        return Problem("malformed", source, image_id, f"object {index + 1}", f"object {name!r}: <bndbox> needs "
                                                                             f"numeric xmin, ymin, xmax, ymax: {text!r}")
    flag = obj.findtext("difficult")  # absent: 0; else 0 or 1, the rule of COCO's iscrowd ("yes" is neither)
    if flag is not None and flag.strip() not in ("0", "1"):
        return Problem("malformed", source, image_id, f"object {index + 1}",
                       f"object {name!r}: <difficult> must be 0 or 1, got {flag!r}")
    difficult = flag is not None and flag.strip() == "1"
    # 1-based inclusive indices -> 0-based pixel edges (module docstring).
    written = f"<bndbox> xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, ymax {ymax:g} (1-based pixels)"
    return AnnotationRecord(index, name, (xmin - 1, ymin - 1, xmax, ymax), difficult, None, None, source, written,
                            f"object {index + 1}")  # counting the XML's <object>s from 1
