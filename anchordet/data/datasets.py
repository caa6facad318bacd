"""The torch datasets of the file formats: ``RecordDataset`` and its COCO, VOC, YOLO and CSV readers.

``anchordet.data.coco`` / ``voc`` / ``yolo`` parse files into a ``RecordSet`` without torch (what
``anchordet check-data`` needs); the classes here turn records into ``Sample`` tensors (also
importable from the package: ``from anchordet.data import CocoDataset``).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from anchordet.data.coco import read_coco_records
from anchordet.data.csv_format import read_csv_records
from anchordet.data.collate import Sample
from anchordet.data.image_io import ImageReadError, load_image
from anchordet.data.validate import (
    RecordSet, check_records, header_sizes, report_or_raise, size_mismatch, stated_or_header_size,
)
from anchordet.data.voc import read_voc_sets
from anchordet.data.yolo import read_yolo_records
from anchordet.errors import InputSkipped, UserError
from anchordet.files import paused_gc
from anchordet.structures.boxes import clip_boxes, nonempty_mask
from anchordet.structures.targets import Targets


class RecordDataset(Dataset):
    """Images and targets from a checked ``RecordSet`` (see ``anchordet.data.validate``).

    ``ds[i]`` is a ``Sample``: the decoded image (3, H, W) float in [0, 1] and its ``Targets``
    (xyxy pixels, labels 0..K-1, ignore = iscrowd / difficult), both after ``transforms``;
    ``orig_size`` is the file's (height, width). Boxes are clipped to the image (they may
    stick out by the tolerance of ``check_annotation``) and boxes left empty are dropped.

    Images whose annotations state no size (a VOC XML without <size>) get it from the file's
    header, so that their boxes are checked against the image too. With
    ``skip_bad_annotations`` every image's header is read first, and an unreadable file is
    skipped like a bad annotation; one that only fails when decoded (truncated) is skipped when
    its turn comes: the next readable image takes its place, with one warning line each.

    Image paths written in the annotation or list files must stay inside the folder they are
    relative to, or ``dataset_root`` (the dataset YAML's root), unless ``allow_outside_root``
    (``validate.outside_dataset``): an image file elsewhere is a problem like a missing one.

    Raises (at construction):
        UserError: naming the file, image id, annotation (by the dataset's own id) and value of
            the first problem, unless ``skip_bad_annotations`` (then each skip is an
            ``InputSkipped`` warning, and one more gives the counts).
    """

    ignore_key = "iscrowd"  # how gt dicts mark ignored objects ("difficult" for VOC)

    def __init__(self, records: RecordSet, transforms=None, skip_bad_annotations: bool = False,
                 what: str = "the annotations", dataset_root: str | os.PathLike | None = None,
                 allow_outside_root: bool = False):
        records = replace(records, dataset_root=None if dataset_root is None else Path(dataset_root),
                          allow_outside_root=allow_outside_root)
        with paused_gc():  # its passes over a large dataset's records cost more than the checks
            sizes, unreadable = header_sizes(records, every=skip_bad_annotations)
            clean, problems = check_records(records, sizes=sizes)
        bad = {p.image_id for p in unreadable}
        clean = replace(clean, images=[image for image in clean.images if image.image_id not in bad])
        report_or_raise(problems + unreadable, skip_bad_annotations, what)
        self.records = clean
        self.transforms = transforms
        self.skip_unreadable = skip_bad_annotations
        self.skipped_images = 0  # in this process (each DataLoader worker counts its own)

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

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the annotations' sizes or the image headers (no
        decoding; read once): what aspect-ratio grouped batches need."""
        if getattr(self, "_aspect_ratios", None) is None:
            sizes = [stated_or_header_size(r) for r in self.records.images]
            self._aspect_ratios = [w / h for h, w in sizes]
        return list(self._aspect_ratios)

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
        record, image = self._readable(index)
        size = (int(image.shape[1]), int(image.shape[2]))
        mismatch = size_mismatch(record, size)
        if mismatch is not None:  # boxes would be in another frame: never train on that silently
            raise UserError(str(mismatch))
        targets = self.targets_of(index, size)
        if self.transforms is not None:
            image, targets = self.transforms(image, targets)
        return Sample(image, targets, record.image_id, size, str(record.path))

    def _readable(self, index: int):
        """(record, decoded image) of ``index``; when skipping unreadable images, of the next one
        that decodes (deterministic, so a resumed run reads the same). A file that became
        unreadable or went missing since the dataset was checked is an ``ImageReadError`` naming
        the annotation file, the image id and the file."""
        for step in range(len(self.records.images)):
            record = self.records.images[(index + step) % len(self.records.images)]
            try:
                return record, load_image(record.path)
            except (ImageReadError, FileNotFoundError) as exc:
                if not self.skip_unreadable:
                    raise ImageReadError(f"{record.source}, image {record.image_id}: {exc}") from exc
                self.skipped_images += 1
                warnings.warn(f"skipped: {record.source}, image {record.image_id}: {exc} (unreadable images "
                              f"skipped so far: {self.skipped_images})", InputSkipped, stacklevel=2)
        raise UserError(f"no image of {len(self.records.images)} decodes")

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
        dataset_root, allow_outside_root: where image files may lie (``RecordDataset``).
    """

    def __init__(self, images_dir: str | os.PathLike, annotation_file: str | os.PathLike, transforms=None,
                 class_names: list[str] | None = None, skip_bad_annotations: bool = False, *,
                 dataset_root: str | os.PathLike | None = None, allow_outside_root: bool = False):
        self.images_dir = Path(images_dir)
        records = read_coco_records(annotation_file, images_dir, class_names)
        super().__init__(records, transforms, skip_bad_annotations, str(annotation_file), dataset_root,
                         allow_outside_root)

    @property
    def image_root(self) -> Path:
        return self.images_dir


class VocDataset(RecordDataset):
    """A VOC split.

    Args:
        root: the folder holding JPEGImages, Annotations and ImageSets (e.g. VOCdevkit/VOC2007),
            or a list of such folders read one after the other (07+12: [VOC2007, VOC2012]).
        image_set: name of ``ImageSets/Main/<image_set>.txt`` (train, val, trainval, test), or a
            list as long as ``root`` (one per folder).
        class_names: the K class names, in label order (VOC files name classes, not ids).
        transforms, skip_bad_annotations, dataset_root, allow_outside_root: as ``CocoDataset``.
    """

    ignore_key = "difficult"

    def __init__(self, root: str | os.PathLike | list, image_set: str | list[str], class_names: list[str],
                 transforms=None, skip_bad_annotations: bool = False, *,
                 dataset_root: str | os.PathLike | None = None, allow_outside_root: bool = False):
        roots = [Path(r) for r in root] if isinstance(root, (list, tuple)) else [Path(root)]
        image_sets = list(image_set) if isinstance(image_set, (list, tuple)) else [image_set] * len(roots)
        if len(image_sets) != len(roots):
            raise ValueError(f"VOC dataset: {len(roots)} folders but {len(image_sets)} image sets")
        self.roots = roots
        self.root = roots[0]
        records = read_voc_sets(list(zip(roots, image_sets)), class_names)
        where = ", ".join(str(r) for r in roots)
        super().__init__(records, transforms, skip_bad_annotations, f"the VOC annotations in {where}", dataset_root,
                         allow_outside_root)

    @property
    def image_root(self) -> Path:
        """JPEGImages of the one folder; with several, their common parent (e.g. VOCdevkit), so
        gt file names say which set an image is from (VOC2012/JPEGImages/2008_000008.jpg)."""
        if len(self.roots) == 1:
            return self.root / "JPEGImages"
        return Path(os.path.commonpath([str(r.resolve()) for r in self.roots]))


class YoloDataset(RecordDataset):
    """A YOLO split.

    Args:
        images: a folder of images (searched recursively), a ``.txt`` file listing image paths
            (relative to the ``.txt`` file's folder, as ultralytics reads them), or a list of those.
        labels_dir: folder of label files mirroring ``images``; None: the ``images`` -> ``labels``
            path rule of ultralytics.
        class_names: the K class names (class index k is label k).
        transforms, skip_bad_annotations, dataset_root, allow_outside_root: as ``CocoDataset``.
    """

    def __init__(self, images, labels_dir: str | os.PathLike | None, class_names: list[str], transforms=None,
                 skip_bad_annotations: bool = False, *, dataset_root: str | os.PathLike | None = None,
                 allow_outside_root: bool = False):
        records = read_yolo_records(images, labels_dir, class_names)
        self._root = Path(images) if isinstance(images, (str, os.PathLike)) and Path(images).is_dir() else None
        super().__init__(records, transforms, skip_bad_annotations, "the YOLO label files", dataset_root,
                         allow_outside_root)

    @property
    def image_root(self) -> Path | None:
        return self._root


class CsvDataset(RecordDataset):
    """A split in the CSV format of yhenon/pytorch-retinanet (``anchordet.data.csv_format``).

    Args:
        annotations: the ``path,x1,y1,x2,y2,class_name`` file.
        class_names, category_ids: from the class list file (``read_class_list``); ids None: 0..K-1.
        images_dir: folder relative image paths start from (None: the annotations file's folder).
        transforms, skip_bad_annotations, dataset_root, allow_outside_root: as ``CocoDataset``.
    """

    def __init__(self, annotations: str | os.PathLike, class_names: list[str], category_ids: list[int] | None = None,
                 images_dir: str | os.PathLike | None = None, transforms=None, skip_bad_annotations: bool = False, *,
                 dataset_root: str | os.PathLike | None = None, allow_outside_root: bool = False):
        self._root = Path(images_dir) if images_dir is not None else Path(annotations).parent
        records = read_csv_records(annotations, class_names, category_ids, images_dir)
        super().__init__(records, transforms, skip_bad_annotations, str(annotations), dataset_root,
                         allow_outside_root)

    @property
    def image_root(self) -> Path:
        return self._root
