"""The checks behind ``anchordet check-data``, shared by the dataset readers.

Every reader (COCO, VOC, YOLO) first parses its files into a ``RecordSet``: one
``ImageRecord`` per image with its ``AnnotationRecord``s exactly as written (category as written,
box as written). ``check_records`` then finds the problems that need no image decoding
(non-finite, degenerate or out-of-image boxes, unknown categories, duplicate image ids, missing
files); ``check_image_files`` decodes every image (unreadable or truncated files, size mismatch
between annotation and file). A ``Problem`` names the file, the image id, the annotation index
and the value. Readers raise the first problem as a ``UserError`` unless told to skip bad
annotations, in which case each skip is reported with ``warnings.warn`` (the same text).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np

from anchordet.data.image_io import ImageReadError, decode_image, image_size, raw_size
from anchordet.errors import InputSkipped, UserError

# Boxes may stick out of the image by this much before they are an error (within it they are
# clipped): annotation tools round to whole pixels, and VOC's 1-based xmax may equal the width.
OUT_OF_IMAGE_TOLERANCE_PX = 1.0
OUT_OF_IMAGE_TOLERANCE_NORMALIZED = 1e-3  # YOLO files, coordinates in [0, 1]
# COCO's object size classes: sqrt(area) below 32 is small, below 96 medium (cocodataset.org/#detection-eval).
SIZE_THRESHOLDS = (32.0, 96.0)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        kind: short code, e.g. "degenerate-box", "missing-image" (``PROBLEM_KINDS``).
        file: the file where it is written (annotation JSON / XML / txt, or the image file).
        image_id: the image's id, or None where the problem is not about one image.
        annotation: the annotation as the dataset names it, what a user searches the file for
            (``AnnotationRecord.ref``: COCO "annotation id 901", VOC "object 2" counting the
            XML's <object>s from 1, YOLO "line 5"), or None.
        message: what is wrong, with the value.
    """

    kind: str
    file: str
    image_id: int | None
    annotation: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.image_id is not None:
            where.append(f"image {self.image_id}")
        if self.annotation is not None:
            where.append(self.annotation)
        return f"{', '.join(where)}: {self.message}"


PROBLEM_KINDS = ("malformed", "outside-dataset", "missing-image", "unreadable-image", "size-mismatch",
                 "duplicate-image-id", "duplicate-annotation-id", "unknown-image-id", "non-finite-box",
                 "degenerate-box", "box-outside-image", "unknown-category")


@dataclass
class AnnotationRecord:
    """One object as written in the annotation file.

    Attributes:
        index: position in its file (COCO: in "annotations"; VOC: among the <object>s, from 0;
            YOLO: the line number).
        category: as written: COCO category id, VOC class name, YOLO class index.
        box: x1, y1, x2, y2 in pixels, or in [0, 1] of the image for a normalized ``RecordSet``.
        ignore: COCO ``iscrowd`` / VOC ``difficult``.
        area: COCO "area" (kept so that evaluation uses the file's areas, as pycocotools does).
        annotation_id: COCO annotation id.
        source: the file it is written in.
        written: the values as the file writes them (COCO "bbox [x, y, w, h]", a YOLO line),
            quoted in messages when they differ from ``box``: a str, or an object whose ``str()``
            makes it when a message needs it (COCO: ``_WrittenBbox``, for speed).
        ref: how messages name it (``Problem.annotation``): the dataset's own id; empty:
            "annotation {index}".
    """

    index: int
    category: int | str
    box: tuple[float, float, float, float]
    ignore: bool = False
    area: float | None = None
    annotation_id: int | None = None
    source: str = ""
    written: str | object | None = None
    ref: str = ""

    @property
    def name(self) -> str:
        return self.ref or f"annotation {self.index}"


@dataclass
class ImageRecord:
    """One image: its id, file, size stated by the annotations (h, w) or None, and objects.
    ``base``: the folder its path, as written in ``source``, is relative to (a COCO split's
    images folder, the VOC root, a CSV or list file's folder), whose inside it may not leave
    (``outside_dataset``); None for a path that no file wrote (found by listing a folder)."""

    image_id: int
    path: Path
    size: tuple[int, int] | None
    annotations: list[AnnotationRecord]
    source: str
    base: Path | None = None


@dataclass
class RecordSet:
    """A parsed split.

    Attributes:
        images: one record per image (images without objects included).
        class_names: K names, label k is ``class_names[k]``.
        category_ids: K ids written in results and gt dicts for labels 0..K-1.
        label_of: category as written -> label.
        normalized: boxes are in [0, 1] of the image (YOLO).
        problems: found while parsing (malformed lines or files); those parts were dropped.
        dataset_root: the dataset YAML's ``root``: image files may lie under it, or under their
            record's ``base`` (``outside_dataset``); None: under their ``base`` only.
        allow_outside_root: the YAML's ``allow_outside_root: true``: image paths may lead anywhere.
    """

    images: list[ImageRecord]
    class_names: list[str]
    category_ids: list[int]
    label_of: dict
    normalized: bool = False
    problems: list[Problem] = field(default_factory=list)
    dataset_root: Path | None = None
    allow_outside_root: bool = False


class _Folders:
    """Is a path inside a folder? Compared on the written path made absolute and normalised
    (``os.path.abspath``: ``..`` removed, links not followed, so an images folder that is a link
    to another disk is still inside). Folder texts cached: a COCO split has 118k images, one base."""

    def __init__(self):
        self._prefixes: dict[Path, str] = {}

    def prefix(self, folder: Path) -> str:
        if folder not in self._prefixes:
            self._prefixes[folder] = os.path.join(os.path.abspath(folder), "")
        return self._prefixes[folder]

    def inside(self, path: str, folder: Path) -> bool:
        return path.startswith(self.prefix(folder))


def outside_dataset(image: ImageRecord, records: RecordSet, folders: _Folders | None = None) -> Problem | None:
    """An "outside-dataset" problem when an image path written in an annotation or list file
    (COCO ``file_name``, VOC ``<filename>``, a CSV row, a YOLO list line) leads out of both the
    folder it is relative to and the dataset's root: ``../../etc/passwd`` or ``/home/x/y.jpg``
    named by a downloaded annotation file is never read, let alone copied by ``data convert``,
    unless the dataset YAML says ``allow_outside_root: true`` (docs/data.md)."""
    if records.allow_outside_root or image.base is None:
        return None
    folders = folders or _Folders()
    path = os.path.abspath(image.path)
    allowed = [image.base] + ([records.dataset_root] if records.dataset_root is not None else [])
    if any(folders.inside(path, folder) for folder in allowed):
        return None
    where = " or ".join(folders.prefix(f).rstrip(os.sep) for f in dict.fromkeys(allowed))
    return Problem("outside-dataset", image.source, image.image_id, None,
                   f"image path {path} lies outside the dataset's folder ({where}): not read (if the "
                   f"file is yours, add 'allow_outside_root: true' to the dataset YAML)")


class _BoxText:
    """``x1, y1, x2, y2`` as messages print it (``:g``), made when formatted."""

    __slots__ = ("box",)

    def __init__(self, box: tuple[float, float, float, float]):
        self.box = box

    def __format__(self, spec: str) -> str:
        return ", ".join(f"{v:g}" for v in self.box)


def check_annotation(ann: AnnotationRecord, image: ImageRecord, label_of: dict, normalized: bool,
                     size: tuple[int, int] | None = None) -> Problem | None:
    """The first problem of one annotation (non-finite, unknown category, degenerate, outside).
    ``size``: the image's (height, width) when the annotations do not state it (a VOC XML
    without <size>), from the file's header or decoding; the outside check needs one."""
    def problem(kind: str, message: str) -> Problem:
        if ann.written is not None and kind != "unknown-category":
            message += f"; written as {ann.written}"
        return Problem(kind, ann.source or image.source, image.image_id, ann.name, message)

    # formatted only for a message: this runs for every annotation of a dataset (860k in COCO)
    box = _BoxText(ann.box)
    if not all(map(math.isfinite, ann.box)):
        return problem("non-finite-box", f"box [{box}] (x1, y1, x2, y2) has a non-finite coordinate")
    if ann.category not in label_of:
        known = sorted(label_of, key=str)
        shown = ", ".join(map(str, known[:20])) + (", ..." if len(known) > 20 else "")
        return problem("unknown-category", f"unknown category {ann.category!r} (known: {shown})")
    x1, y1, x2, y2 = ann.box
    if x2 <= x1 or y2 <= y1:
        return problem("degenerate-box", f"box [{box}] (x1, y1, x2, y2) is degenerate: width {x2 - x1:g}, "
                                         f"height {y2 - y1:g}")
    size = image.size if image.size is not None else size
    if normalized or size is not None:
        height, width = (1.0, 1.0) if normalized else size
        tol = OUT_OF_IMAGE_TOLERANCE_NORMALIZED if normalized else OUT_OF_IMAGE_TOLERANCE_PX
        if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            frame = "the normalized image [0, 1]" if normalized else f"the image (width {width}, height {height})"
            return problem("box-outside-image", f"box [{box}] (x1, y1, x2, y2) lies outside {frame}")
    return None


def check_records(records: RecordSet, check_files_exist: bool = True,
                  sizes: dict[int, tuple[int, int]] | None = None) -> tuple[RecordSet, list[Problem]]:
    """Find the problems that need no decoding. ``sizes``: {image_id: (height, width)} of
    images whose annotations state none (``header_sizes``), for the outside-the-image check.

    Returns:
        a copy of ``records`` without the bad images and bad annotations, and every problem
        (``records.problems`` first).
    """
    problems = list(records.problems)
    seen: dict[int, ImageRecord] = {}
    clean_images = []
    folders = _Folders()
    for image in records.images:
        if image.image_id in seen:
            problems.append(Problem("duplicate-image-id", image.source, image.image_id, None,
                                    f"image id {image.image_id} is used twice ({seen[image.image_id].path.name} "
                                    f"and {image.path.name})"))
            continue
        seen[image.image_id] = image
        outside = outside_dataset(image, records, folders)
        if outside is not None:
            problems.append(outside)
            continue
        if check_files_exist and not image.path.is_file():
            problems.append(Problem("missing-image", image.source, image.image_id, None,
                                    f"image file not found: {image.path}"))
            continue
        if image.size is not None and min(image.size) <= 0:
            problems.append(Problem("malformed", image.source, image.image_id, None,
                                    f"image size (height, width) {image.size} must be positive"))
            continue
        kept = []
        for ann in image.annotations:
            found = check_annotation(ann, image, records.label_of, records.normalized, (sizes or {}).get(image.image_id))
            if found is None:
                kept.append(ann)
            else:
                problems.append(found)
        clean_images.append(replace(image, annotations=kept))
    return replace(records, images=clean_images, problems=[]), problems


def check_image_files(records: RecordSet) -> tuple[list[Problem], dict[int, tuple[int, int]]]:
    """Decode every image: unreadable or truncated files, size mismatch with the annotations.

    Returns:
        the problems and {image_id: (height, width)} of the images that decoded.
    """
    problems, sizes = [], {}
    for image in records.images:
        try:
            size = tuple(decode_image(image.path).shape[:2])
        except FileNotFoundError as exc:
            problems.append(Problem("missing-image", image.source, image.image_id, None, str(exc)))
            continue
        except ImageReadError as exc:
            problems.append(Problem("unreadable-image", image.source, image.image_id, None, str(exc)))
            continue
        sizes[image.image_id] = size
        mismatch = size_mismatch(image, size)
        if mismatch is not None:
            problems.append(mismatch)
        if image.size is None and not records.normalized:  # a VOC XML without <size>: now it is known
            problems += [p for p in (check_annotation(a, image, records.label_of, False, size)
                                     for a in image.annotations) if p is not None]
    return problems, sizes


def header_sizes(records: RecordSet, every: bool = False) -> tuple[dict[int, tuple[int, int]], list[Problem]]:
    """(height, width) from the image files' headers (no decoding) of the images whose
    annotations state no size (``every``: of all images, to find unreadable files up front).

    Returns:
        {image_id: (height, width)} and an "unreadable-image" problem per file whose header
        cannot be read (not an image, too many pixels). Missing files are left to ``check_records``.
    """
    sizes, problems = {}, []
    folders = _Folders()
    for image in records.images:
        if not (every or (image.size is None and not records.normalized)):
            continue
        if outside_dataset(image, records, folders) is not None or not image.path.is_file():
            continue  # left to check_records, which refuses it unopened
        try:
            sizes[image.image_id] = image_size(image.path)
        except ImageReadError as exc:
            problems.append(Problem("unreadable-image", image.source, image.image_id, None, str(exc)))
    return sizes, problems


def size_mismatch(image: ImageRecord, decoded_size: tuple[int, int]) -> Problem | None:
    """A problem if the annotation's (height, width) is not the decoded image's."""
    if image.size is None or tuple(image.size) == tuple(decoded_size):
        return None
    hint = ""
    if tuple(image.size) == tuple(raw_size(image.path)) and tuple(image.size) != tuple(decoded_size):
        hint = " (the annotation ignores the file's EXIF orientation, which anchordet applies)"
    return Problem("size-mismatch", image.source, image.image_id, None,
                   f"annotation says height x width {image.size[0]}x{image.size[1]} but {image.path.name} is "
                   f"{decoded_size[0]}x{decoded_size[1]}{hint}")


def report_or_raise(problems: list[Problem], skip: bool, what: str) -> None:
    """Raise ``UserError`` with the first problem, or when ``skip`` warn once per problem
    (``InputSkipped``: one line each on the command line) and once with the counts."""
    if not problems:
        return
    if skip:
        for problem in problems:
            warnings.warn(f"skipped: {problem}", InputSkipped, stacklevel=3)
        images = sum(p.annotation is None for p in problems)  # the others drop one annotation
        warnings.warn(f"skipped {len(problems) - images} bad annotation(s) and {images} unreadable or "
                      f"unusable image(s) or file(s) of {what}", InputSkipped, stacklevel=3)
        return
    more = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
    raise UserError(f"{problems[0]}{more}; fix {what}, run `anchordet check-data` to list every problem, "
                     "or skip bad annotations (skip_bad_annotations=True)")


@dataclass
class DatasetSummary:
    """What a split holds (after dropping bad annotations).

    Attributes:
        num_images, num_empty: images, and images without any object.
        boxes_per_class: {class name: boxes} including ignored ones.
        num_ignored: iscrowd / difficult boxes.
        size_counts: {"small", "medium", "large": boxes} by COCO's sqrt(area) thresholds, in pixels.
        side_percentiles: {"min", "p5", "p50", "p95", "max": sqrt(area) in pixels}.
        num_unsized: normalized boxes that could not be measured (image not decoded).
        num_unmeasurable: boxes whose sqrt(area) is infinite (coordinates near 1e308 in a file
            whose images state no size, not checked against the image: ``check-data --no-decode``),
            left out of ``size_counts`` and ``side_percentiles``.
    """

    num_images: int
    num_empty: int
    boxes_per_class: dict[str, int]
    num_ignored: int
    size_counts: dict[str, int]
    side_percentiles: dict[str, float]
    num_unsized: int = 0
    num_unmeasurable: int = 0


def summarize(records: RecordSet, sizes: dict[int, tuple[int, int]] | None = None) -> DatasetSummary:
    """Counts and box-size distribution; ``sizes`` (from ``check_image_files``) scale normalized boxes."""
    counts = {name: 0 for name in records.class_names}
    sides, ignored, unsized, empty = [], 0, 0, 0
    for image in records.images:
        empty += not image.annotations
        scale = _pixel_scale(image, records.normalized, sizes or {})
        for ann in image.annotations:
            counts[records.class_names[records.label_of[ann.category]]] += 1
            ignored += ann.ignore
            if scale is None:
                unsized += 1
                continue
            x1, y1, x2, y2 = ann.box
            sides.append(math.sqrt((x2 - x1) * scale[1] * (y2 - y1) * scale[0]))
    small, large = SIZE_THRESHOLDS
    array = np.asarray(sides, dtype=np.float64)
    finite = np.isfinite(array)
    array, unmeasurable = array[finite], int((~finite).sum())  # inf - inf in a percentile: NaN and a warning
    size_counts = {"small": int((array < small).sum()), "medium": int(((array >= small) & (array < large)).sum()),
                   "large": int((array >= large).sum())}
    percentiles = {} if not len(array) else {
        name: float(np.percentile(array, q)) for name, q in (("min", 0), ("p5", 5), ("p50", 50), ("p95", 95), ("max", 100))}
    return DatasetSummary(len(records.images), empty, counts, ignored, size_counts, percentiles, unsized, unmeasurable)


def _pixel_scale(image: ImageRecord, normalized: bool, sizes: dict) -> tuple[float, float] | None:
    if not normalized:
        return (1.0, 1.0)
    size = sizes.get(image.image_id)
    return None if size is None else (float(size[0]), float(size[1]))


def read_text(path: Path) -> str:
    """A UTF-8 text file (a label file, an image list); UserError naming it when it is not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def stated_or_header_size(image: ImageRecord) -> tuple[int, int]:
    """(height, width): the annotation's, else the file header's (EXIF applied, no decoding)."""
    return tuple(image.size) if image.size is not None else image_size(image.path)


def iter_problem_lines(problems: Iterable[Problem]) -> Iterable[str]:
    for problem in problems:
        yield f"[{problem.kind}] {problem}"
