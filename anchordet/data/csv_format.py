"""The CSV format of yhenon/pytorch-retinanet and fizyr/keras-retinanet (``format: csv``).

An annotations file has one row per object, ``path,x1,y1,x2,y2,class_name``, and a row with
only a path (``path`` or ``path,,,,,``) for an image without objects::

    images/a.jpg,837,346,981,456,cow
    images/a.jpg,215,312,279,391,cat
    images/b.jpg,,,,,

Coordinates are pixels, x2 > x1 and y2 > y1, taken as anchordet's 0-based pixel edges (as both
repositories compute areas as (x2 - x1) * (y2 - y1)); those repositories write and read
integers, anchordet reads any number. Relative paths are relative to the ``images`` folder
when one is given, else to the annotations file's folder (keras-retinanet's ``base_dir``
default). A class list file has rows ``class_name,id`` (unique names and integer ids):
label k is the k-th class by increasing id, and results name the class by its id. Image ids
are the order in which images first appear (0, 1, ...); the annotation index of an object is
its line number, and every message about a row names the file and the line. Torch-free: ``CsvDataset`` is in ``anchordet.data.datasets``.

DeepForest's variant is read too: a header row naming the columns ``image_path, xmin, ymin,
xmax, ymax, label`` (any order; other columns, such as a pandas index, are ignored), and a row
whose box is ``0,0,0,0`` (any label) for an image without objects::

    image_path,xmin,ymin,xmax,ymax,label
    OSBS_029.png,203,67,227,90,Tree
    empty.png,0,0,0,0,Tree

``anchordet data convert --to deepforest`` writes it (``anchordet.data.convert``).
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from anchordet.data.validate import AnnotationRecord, ImageRecord, Problem, RecordSet, read_text
from anchordet.errors import UserError

ROW = "path,x1,y1,x2,y2,class_name"
DEEPFOREST_COLUMNS = ("image_path", "xmin", "ymin", "xmax", "ymax", "label")


def read_class_list(path: str | os.PathLike) -> tuple[list[str], list[int]]:
    """(class names, ids) by increasing id from a ``class_name,id`` file.

    Raises:
        FileNotFoundError: no such file.
        UserError: naming the file and line of a bad row, a repeated name or id, or no class.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV class list not found: {path}")
    by_id: dict[int, str] = {}
    for number, row in _rows(path):
        if len(row) != 2 or not row[0].strip():
            raise UserError(f"{path}, line {number}: expected 'class_name,id', got {','.join(row)!r}")
        name, text = row[0].strip(), row[1].strip()
        try:
            class_id = int(text)
        except ValueError:
            raise UserError(f"{path}, line {number}: class id {text!r} is not an integer") from None
        if class_id in by_id:
            raise UserError(f"{path}, line {number}: class id {class_id} is used twice ({by_id[class_id]!r}, {name!r})")
        if name in by_id.values():
            raise UserError(f"{path}, line {number}: class name {name!r} is listed twice")
        by_id[class_id] = name
    if not by_id:
        raise UserError(f"{path}: no classes (rows 'class_name,id')")
    ids = sorted(by_id)
    return [by_id[i] for i in ids], ids


def read_csv_records(annotations: str | os.PathLike, class_names: list[str], category_ids: list[int] | None = None,
                     images_dir: str | os.PathLike | None = None) -> RecordSet:
    """Parse an annotations file into a ``RecordSet`` (bad rows become problems naming the line).

    Args:
        annotations: the ``path,x1,y1,x2,y2,class_name`` file.
        class_names, category_ids: label k is ``class_names[k]``, written as ``category_ids[k]``
            (``read_class_list``; None: 0..K-1).
        images_dir: folder relative paths are relative to (None: the annotations file's folder).
    """
    path = Path(annotations)
    if not path.is_file():
        raise FileNotFoundError(f"CSV annotations file not found: {path}")
    if not class_names:
        raise UserError(f"CSV dataset {path}: class names are required (a class list file or names)")
    base = Path(images_dir) if images_dir is not None else path.parent
    records: dict[str, ImageRecord] = {}
    problems: list[Problem] = []
    rows, columns = _deepforest_columns(_rows(path))
    for number, row in rows:
        if columns is not None:  # DeepForest: fields by the header's names; 0,0,0,0 is an image without objects
            if len(row) != columns[1]:
                problems.append(Problem("malformed", str(path), None, f"line {number}",
                                        f"the header names {columns[1]} columns, this row has {len(row)}: "
                                        f"{','.join(row)!r}"))
                continue
            row = [row[i] for i in columns[0]]
            if all(_is_zero(v) for v in row[1:5]):
                row = row[:1]
        image = row[0].strip() if row else ""
        if not image:
            problems.append(Problem("malformed", str(path), None, f"line {number}", f"no image path: {','.join(row)!r}"))
            continue
        if image not in records:
            file = Path(image) if Path(image).is_absolute() else base / image
            records[image] = ImageRecord(len(records), file, None, [], str(path), base)
        record = records[image]
        parsed = _parse_row(row, number, str(path), record.image_id)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        elif parsed is not None:
            record.annotations.append(parsed)
    ids = list(category_ids) if category_ids is not None else list(range(len(class_names)))
    return RecordSet(list(records.values()), list(class_names), ids, {n: k for k, n in enumerate(class_names)},
                     False, problems)


def _deepforest_columns(rows):
    """(rows after the header, (indices of DEEPFOREST_COLUMNS, column count)) when the first row
    is a DeepForest header, else (all rows, None)."""
    rows = list(rows)
    if rows:
        names = [field.strip().lower() for field in rows[0][1]]
        if all(name in names for name in DEEPFOREST_COLUMNS):
            return rows[1:], ([names.index(name) for name in DEEPFOREST_COLUMNS], len(names))
    return rows, None


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0
    except ValueError:
        return False


def _rows(path: Path):
    """(line number, fields) of every non-blank line."""
    text = read_text(path)  # a non-UTF-8 file: a UserError naming it
    for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if any(field.strip() for field in row):
            yield number, row


def _parse_row(row: list[str], number: int, source: str, image_id: int) -> AnnotationRecord | Problem | None:
    """One object, None for an image-only row, or a Problem naming the line."""
    written = ",".join(row)
    if len(row) == 1 or (len(row) == 6 and not any(f.strip() for f in row[1:])):
        return None
    if len(row) != 6:
        return Problem("malformed", source, image_id, f"line {number}",
                       f"expected {ROW!r} (6 fields) or a path alone, got {len(row)} fields: {written!r}")
    try:
        x1, y1, x2, y2 = (float(v) for v in row[1:5])
    except ValueError:
        return Problem("malformed", source, image_id, f"line {number}",
                       f"x1, y1, x2, y2 must be numbers, got {written!r}")
    name = row[5].strip()
    if not name:
        return Problem("malformed", source, image_id, f"line {number}", f"no class name: {written!r}")
    return AnnotationRecord(number, name, (x1, y1, x2, y2), False, None, None, source, f"line {number} {written!r}",
                            f"line {number}")
