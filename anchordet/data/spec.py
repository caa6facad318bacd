"""Dataset description files (YAML) and ``build_dataset``.

A YAML file names the format, the class names and the splits (docs/data.md)::

    format: coco            # coco | voc | yolo | csv | digits
    root: .                 # relative paths are relative to the YAML file's folder
    names: [cat, dog]       # optional for coco (then read from the train JSON's categories)
    train: {images: images/train, annotations: annotations/instances_train.json}
    val:   {images: images/val,   annotations: annotations/instances_val.json}

VOC splits are ``{root: VOCdevkit/VOC2007, image_set: trainval}``, or a list of those read as one
split (07+12: ``[{root: VOCdevkit/VOC2007, image_set: trainval}, {root: VOCdevkit/VOC2012,
image_set: trainval}]``); YOLO splits are
``{images: images/train, labels: labels/train}`` or, as in an ultralytics data YAML (``path``,
``train``, ``val``, ``names`` as a list or a {index: name} dict, no ``format`` key), a folder or
an image-list file. CSV (yhenon/pytorch-retinanet) splits are an annotations file, or
``{annotations: train.csv, images: FOLDER}``, with a top-level ``classes: classes.csv`` (or
``names``). Errors name the YAML file and the key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from anchordet.config.schema import DigitsOptions
from anchordet.data.coco import coco_categories, load_coco_json, read_coco_records
from anchordet.data.csv_format import read_class_list, read_csv_records
from anchordet.data.validate import RecordSet, read_text
from anchordet.data.voc import read_voc_sets
from anchordet.data.yolo import read_yolo_records
from anchordet.errors import UserError
from anchordet.files import load_yaml_file

FORMATS = ("coco", "voc", "yolo", "csv", "digits")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset is and how to read it.

    Attributes:
        format: "coco", "voc", "yolo" or "digits".
        class_names: label k is ``class_names[k]``.
        splits: split name -> options with absolute paths (coco: images, annotations; voc: root,
            image_set, each a list with one entry per (root, image set) pair; yolo: images, labels
            (None: the ultralytics images -> labels rule)).
        source: the YAML file, or "digits".
        digits: options of the built-in dataset (format "digits" only).
        root: the YAML's ``root`` (absolute). Image paths that annotation and list files write
            must stay under it or under the folder they are relative to
            (``validate.outside_dataset``), unless ``allow_outside_root`` (the YAML's key).
    """

    format: str
    class_names: list[str]
    splits: dict[str, dict] = field(default_factory=dict)
    source: str = ""
    digits: DigitsOptions | None = None
    root: Path | None = None
    allow_outside_root: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def digits_spec(options: DigitsOptions = DigitsOptions()) -> DatasetSpec:
    """The built-in digits dataset (no files). ``val`` is the fixed test split."""
    from anchordet.data.digits import CLASS_NAMES  # torch: only the digits dataset needs it

    return DatasetSpec("digits", [CLASS_NAMES[d] for d in options.classes], {"train": {}, "val": {}}, "digits",
                       options)


def load_dataset_spec(path_or_name: str | os.PathLike) -> DatasetSpec:
    """Read a dataset YAML (or the built-in name "digits").

    Raises:
        FileNotFoundError: no such file.
        UserError: naming the YAML file and the key, for a missing or malformed entry.
    """
    if str(path_or_name) == "digits":
        return digits_spec()
    path = Path(path_or_name)
    if not path.is_file():
        raise FileNotFoundError(f"dataset description not found: {path} (a YAML file, or the built-in 'digits')")
    data = load_yaml_file(path)  # bounded: size, nesting, alias expansion (one line)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a dataset description is a YAML mapping with keys format, names, train, val")
    return _SpecReader(path, data).read()


class _SpecReader:
    """Turns one YAML mapping into a ``DatasetSpec``; every error names the file and the key."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = path, data

    def error(self, key: str, message: str) -> UserError:
        return UserError(f"{self.path}: key {key!r}: {message}")

    def read(self) -> DatasetSpec:
        fmt = self.data.get("format")
        if fmt is None and "names" in self.data and not isinstance(self.data.get("train", self.data.get("val")), dict):
            fmt = "yolo"  # an ultralytics data YAML
        if fmt not in FORMATS:
            raise self.error("format", f"must be one of {', '.join(FORMATS)}; got {fmt!r}")
        if fmt == "digits":
            return self._digits()
        root = self.data.get("root", self.data.get("path", "."))
        if not isinstance(root, str):
            raise self.error("root", f"must be a folder path, got {root!r}")
        self.root = (self.path.parent / root).resolve()
        names = self._names(required=fmt not in ("coco", "csv"))
        if fmt == "csv":
            self.classes = self._csv_classes(names)
            names = names or self.classes[0]
        splits = {s: getattr(self, f"_{fmt}_split")(s, self.data[s]) for s in SPLITS if self.data.get(s) is not None}
        if not splits:
            raise self.error("train", "no split given: add 'train' and/or 'val'")
        if names is None:
            names = self._coco_names(splits)
        allow = self.data.get("allow_outside_root", False)
        if not isinstance(allow, bool):
            raise self.error("allow_outside_root", f"must be true or false, got {allow!r}")
        return DatasetSpec(fmt, names, splits, str(self.path), root=self.root, allow_outside_root=allow)

    def _names(self, required: bool) -> list[str] | None:
        names = self.data.get("names")
        if names is None:
            if required:
                raise self.error("names", "required for this format: the list of class names")
            return None
        if isinstance(names, dict):  # ultralytics: {0: person, 1: bicycle}
            if sorted(names) != list(range(len(names))):
                raise self.error("names", f"as a mapping its keys must be 0..{len(names) - 1}, got {sorted(names)}")
            names = [names[k] for k in range(len(names))]
        if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
            raise self.error("names", f"must be a non-empty list of class names, got {names!r}")
        names = [str(n) for n in names]
        if len(set(names)) != len(names):
            raise self.error("names", f"class names must be unique, got {names}")
        return names

    def _file(self, key: str, value) -> Path:
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a path, got {value!r}")
        return (self.root / value).resolve()

    def _need(self, split: str, value, keys: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.error(split, f"must be a mapping with keys {', '.join(keys)}, got {value!r}")
        for key in keys:
            if key not in value:
                raise self.error(f"{split}.{key}", "missing")
        return value

    def _coco_split(self, split: str, value) -> dict:
        value = self._need(split, value, ("images", "annotations"))
        return {"images": self._file(f"{split}.images", value["images"]),
                "annotations": self._file(f"{split}.annotations", value["annotations"])}

    def _voc_split(self, split: str, value) -> dict:
        if isinstance(value, list):
            if not value:
                raise self.error(split, "an empty list: give {root: ..., image_set: ...} entries")
            pairs = [self._voc_pair(f"{split}[{i}]", v) for i, v in enumerate(value)]
        else:
            pairs = [self._voc_pair(split, value)]
        return {"root": [r for r, _ in pairs], "image_set": [s for _, s in pairs]}

    def _voc_pair(self, key: str, value) -> tuple[Path, str]:
        value = self._need(key, value, ("image_set",))
        root = self._file(f"{key}.root", value["root"]) if "root" in value else self.root
        if not isinstance(value["image_set"], str):
            raise self.error(f"{key}.image_set", f"must be a name such as 'trainval', got {value['image_set']!r}")
        return root, value["image_set"]

    def _yolo_split(self, split: str, value) -> dict:
        if isinstance(value, dict):
            value = self._need(split, value, ("images",))
            labels = self._file(f"{split}.labels", value["labels"]) if value.get("labels") is not None else None
            return {"images": self._file(f"{split}.images", value["images"]), "labels": labels}
        if isinstance(value, list):
            return {"images": [self._file(f"{split}[{i}]", v) for i, v in enumerate(value)], "labels": None}
        return {"images": self._file(split, value), "labels": None}

    def _csv_classes(self, names: list[str] | None) -> tuple[list[str], list[int]]:
        """(names, ids) from the ``classes`` file (the yhenon / keras-retinanet class list), or
        ids 0..K-1 for ``names``; with both, the file's order must be ``names``."""
        if self.data.get("classes") is None:
            if names is None:
                raise self.error("classes", "required for format csv (a 'class_name,id' file), or give 'names'")
            return names, list(range(len(names)))
        listed, ids = read_class_list(self._file("classes", self.data["classes"]))
        if names is not None and names != listed:
            raise self.error("names", f"{names} differ from the class list {listed} (by increasing id)")
        return listed, ids

    def _csv_split(self, split: str, value) -> dict:
        if isinstance(value, dict):
            value = self._need(split, value, ("annotations",))
            images = self._file(f"{split}.images", value["images"]) if value.get("images") is not None else None
            annotations = self._file(f"{split}.annotations", value["annotations"])
        else:
            annotations, images = self._file(split, value), None
        return {"annotations": annotations, "images": images, "category_ids": list(self.classes[1])}

    def _coco_names(self, splits: dict) -> list[str]:
        first = splits.get("train") or next(iter(splits.values()))
        names, _ = coco_categories(load_coco_json(first["annotations"]), first["annotations"])
        return names

    def _digits(self) -> DatasetSpec:
        allowed = {f for f in DigitsOptions.__dataclass_fields__}
        unknown = set(self.data) - allowed - {"format"}
        if unknown:
            raise self.error(sorted(unknown)[0], f"not a digits option; options: {', '.join(sorted(allowed))}")
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in self.data.items() if k != "format"}
        try:
            return digits_spec(DigitsOptions(**options))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{self.path}: digits options: {exc}") from exc


def _check_split(spec: DatasetSpec, split: str) -> dict:
    if split not in spec.splits:
        raise UserError(f"{spec.source}: no split {split!r}; it has {', '.join(spec.splits) or 'none'}")
    return spec.splits[split]


def build_dataset(spec: DatasetSpec, split: str, transforms=None, skip_bad_annotations: bool = False):
    """The dataset of one split: a ``CocoDataset``, ``VocDataset``, ``YoloDataset``, ``CsvDataset`` or
    ``DigitsDataset``.

    Every one returns ``Sample``s and has ``class_names``, ``num_classes``, ``category_ids``,
    ``coco_ground_truth()`` and ``set_epoch(epoch)``.
    """
    # torch datasets imported here: reading specs and records (check-data) stays torch-free
    from anchordet.data.datasets import CocoDataset, CsvDataset, VocDataset, YoloDataset
    from anchordet.data.digits import DigitsDataset

    options = _check_split(spec, split)
    if spec.format == "digits":
        return DigitsDataset(split, spec.digits, transforms)
    where = dict(dataset_root=spec.root, allow_outside_root=spec.allow_outside_root)
    if spec.format == "coco":
        return CocoDataset(options["images"], options["annotations"], transforms, spec.class_names, skip_bad_annotations,
                           **where)
    if spec.format == "voc":
        return VocDataset(options["root"], options["image_set"], spec.class_names, transforms, skip_bad_annotations,
                          **where)
    if spec.format == "csv":
        return CsvDataset(options["annotations"], spec.class_names, options["category_ids"], options["images"],
                          transforms, skip_bad_annotations, **where)
    return YoloDataset(options["images"], options["labels"], spec.class_names, transforms, skip_bad_annotations,
                       **where)


def read_records(spec: DatasetSpec, split: str) -> RecordSet:
    """The unchecked records of a file-based split (what ``check-data`` inspects), carrying the
    YAML's rule for image paths outside the dataset's folder (``validate.outside_dataset``)."""
    records = _read_split_records(spec, split)
    return replace(records, dataset_root=spec.root, allow_outside_root=spec.allow_outside_root)


def _read_split_records(spec: DatasetSpec, split: str) -> RecordSet:
    options = _check_split(spec, split)
    if spec.format == "coco":
        return read_coco_records(options["annotations"], options["images"], spec.class_names)
    if spec.format == "voc":
        return read_voc_sets(list(zip(options["root"], options["image_set"])), spec.class_names)
    if spec.format == "csv":
        return read_csv_records(options["annotations"], spec.class_names, options["category_ids"], options["images"])
    if spec.format == "yolo":
        return read_yolo_records(options["images"], options["labels"], spec.class_names)
    raise UserError("the digits dataset is generated: it has no files to check")
