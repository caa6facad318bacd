"""Ground truth and detection results shared by the COCO and VOC evaluators.

Ground truth is a COCO-style dict (``images``, ``annotations``, ``categories``); detections
arrive either as tensors per image (``xyxy`` absolute pixels of the original image) or as COCO
results entries ``{image_id, category_id, bbox [x, y, w, h], score}``. Both paths are stored
the same way (float64 ``bbox_xywh``), so ``add`` and ``add_results`` give identical numbers.
Everything is validated here, at the boundary, with messages naming the entry and the value.

Speed (a 5000-image results file holds 500k entries): JSON is parsed by
``anchordet.files.load_json`` (orjson, the garbage collector paused). Arrays are
then built column by column (``itemgetter`` + ``np.fromiter``), checking the value types once
per column; only when a check fails does a per-entry scan run, to name the bad entry. (A
parser that skips the Python objects altogether, numpy on the raw text, measured slower than
orjson: about 0.9 s against 0.35 s for 71 MB.)
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from anchordet.errors import shown
from anchordet.files import load_json, paused_gc

RESULT_KEYS = ("image_id", "category_id", "bbox", "score")


def _to_numpy(x: Any, dtype) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor on any device
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def xyxy_to_xywh(boxes_xyxy: Any) -> np.ndarray:
    """(N, 4) xyxy (tensor or array) -> (N, 4) float64 ``[x, y, w, h]`` (COCO ``bbox``).

    The subtraction is done in float64 so that ``add`` and ``add_results`` of
    :func:`detections_to_coco_results` agree to the last bit.
    """
    boxes = _to_numpy(boxes_xyxy, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def detections_to_coco_results(image_id: int, boxes_xyxy: Any, scores: Any, labels: Any,
                               category_ids: Sequence[int]) -> list[dict]:
    """One image's detections as COCO results entries.

    Args:
        image_id: the image's COCO id.
        boxes_xyxy: (N, 4) float xyxy, absolute pixels of the original image.
        scores: (N,) float.
        labels: (N,) int in ``0..K-1``; mapped to dataset ids by ``category_ids[label]``.
        category_ids: K dataset category ids (contract 3: mapped back on export).
    Returns:
        list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` with floats.
    """
    bbox = xyxy_to_xywh(boxes_xyxy)
    scores_np = _to_numpy(scores, np.float64).reshape(-1)
    labels_np = _to_numpy(labels, np.int64).reshape(-1)
    if not (len(bbox) == len(scores_np) == len(labels_np)):
        raise ValueError(f"image {image_id}: {len(bbox)} boxes, {len(scores_np)} scores and "
                         f"{len(labels_np)} labels differ in number")
    bad = (labels_np < 0) | (labels_np >= len(category_ids))
    if bad.any():
        raise ValueError(f"image {image_id}: label {int(labels_np[bad][0])} is outside 0..{len(category_ids) - 1}")
    return [{"image_id": int(image_id), "category_id": int(category_ids[lab]), "bbox": box, "score": s}
            for lab, box, s in zip(labels_np.tolist(), bbox.tolist(), scores_np.tolist())]


@dataclass(frozen=True)
class GroundTruth:
    """COCO-style ground truth as flat arrays (G annotations, I images, K categories).

    Attributes:
        image_ids: (I,) int64 sorted image ids (the order pycocotools evaluates them in).
        category_ids: (K,) int64 sorted category ids.
        category_names: K names, in ``category_ids`` order.
        image_index: (G,) int64 index into ``image_ids``.
        category_index: (G,) int64 index into ``category_ids``.
        bbox_xywh: (G, 4) float64 ``[x, y, w, h]``.
        area: (G,) float64, the annotation's ``area`` field (``w * h`` when absent).
        iscrowd: (G,) bool.
        difficult: (G,) bool (VOC ``difficult``; False when absent).
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    category_names: list[str]
    image_index: np.ndarray
    category_index: np.ndarray
    bbox_xywh: np.ndarray
    area: np.ndarray
    iscrowd: np.ndarray
    difficult: np.ndarray

    @staticmethod
    def load(gt: dict | str | Path) -> "GroundTruth":
        """Parse a COCO ground-truth dict, or read it from a JSON file path."""
        if isinstance(gt, (str, Path)):
            gt = load_json(gt)
        return _parse_ground_truth(gt)

    def image_lookup(self, image_ids: np.ndarray, what: str) -> np.ndarray:
        """Map ids to indices into ``image_ids``; ValueError naming the first unknown one."""
        return _lookup(self.image_ids, image_ids, f"{what}: image_id", "is not in the ground truth images")

    def category_lookup(self, category_ids: np.ndarray, what: str) -> np.ndarray:
        return _lookup(self.category_ids, category_ids, f"{what}: category_id",
                       "is not in the ground truth categories")


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray, prefix: str | Callable[[int], str], suffix: str) -> np.ndarray:
    """Indices of ``ids`` in ``sorted_ids``. The error names the first unknown id after
    ``prefix``: a string that may contain ``{i}`` for the entry's index, or a function of it."""
    index = np.searchsorted(sorted_ids, ids)
    index_c = np.minimum(index, max(len(sorted_ids) - 1, 0))
    found = (index < len(sorted_ids)) & (sorted_ids[index_c] == ids) if len(sorted_ids) else np.zeros(len(ids), bool)
    if not found.all():
        i = int(np.flatnonzero(~found)[0])
        name = prefix(i) if callable(prefix) else prefix.format(i=i)
        raise ValueError(f"{name} {int(ids[i])} {suffix}")
    return index_c.astype(np.int64)


def _annotation_name(ann: Any, i: int, with_image: bool = True) -> str:
    """How errors name a ground-truth annotation: by the dataset's own ``id`` (its position in
    'annotations' only when it has none), with its ``image_id`` when known."""
    ann_id = ann.get("id") if isinstance(ann, dict) else None
    name = (f"ground truth annotation id {shown(ann_id)}" if ann_id is not None
            else f"ground truth annotation {i} in 'annotations' (no 'id')")
    image_id = ann.get("image_id") if isinstance(ann, dict) else None
    return f"{name}, image_id {shown(image_id)}" if with_image and image_id is not None else name


def _require_list(gt: dict, key: str) -> list:
    value = gt.get(key, [] if key == "annotations" else None)
    if not isinstance(value, list):
        raise ValueError(f"ground truth: '{key}' must be a list, got {type(value).__name__}")
    return value


def _int_field(entry: Any, key: str, what: str) -> int:
    if not isinstance(entry, dict) or key not in entry:
        raise ValueError(f"{what}: missing key '{key}'")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what}: '{key}' must be an integer, got {shown(value)}")
    return int(value)


def _parse_ground_truth(gt: Any) -> GroundTruth:
    if not isinstance(gt, dict):
        raise ValueError(f"ground truth must be a COCO dict, got {type(gt).__name__}")
    images, anns, cats = (_require_list(gt, k) for k in ("images", "annotations", "categories"))
    image_ids = np.array([_int_field(im, "id", f"ground truth image {i}") for i, im in enumerate(images)], np.int64)
    cat_ids = np.array([_int_field(c, "id", f"ground truth category {i}") for i, c in enumerate(cats)], np.int64)
    for name, ids in (("image", image_ids), ("category", cat_ids)):
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"ground truth: {name} id {int(uniq[counts > 1][0])} appears more than once")
    cat_order = np.argsort(cat_ids, kind="stable")
    names = [str(cats[i].get("name", cats[i]["id"])) for i in cat_order]
    if len(set(names)) < len(names):  # names key per-class results: keep them distinct
        names = [f"{n} (id {cats[i]['id']})" if names.count(n) > 1 else n for n, i in zip(names, cat_order)]
    with paused_gc():
        columns = _annotation_columns(anns)
    if columns is None:  # something is off: the per-entry parser names it (or accepts odd types)
        columns = _parse_annotations(anns)
    bbox, area, flags, ann_img, ann_cat = columns
    sorted_images, sorted_cats = np.sort(image_ids), np.sort(cat_ids)
    return GroundTruth(
        image_ids=sorted_images, category_ids=sorted_cats, category_names=names,
        image_index=_lookup(sorted_images, ann_img, lambda i: f"{_annotation_name(anns[i], i, False)}: image_id",
                            "is not in 'images'"),
        category_index=_lookup(sorted_cats, ann_cat, lambda i: f"{_annotation_name(anns[i], i)}: category_id",
                               "is not in 'categories'"),
        bbox_xywh=bbox, area=area, iscrowd=flags[:, 0], difficult=flags[:, 1])


_INT = {int}
_NUMBER = {int, float}
_FLAG = {int, bool}  # iscrowd / difficult: 0 or 1 (JSON true / false), as the dataset readers require


def _types(values) -> set:
    return set(map(type, values))


def _annotation_columns(anns: list):
    """Fast path of ``_parse_annotations``: None when any entry needs the per-entry parser."""
    n = len(anns)
    try:
        img, cat, box = (list(map(itemgetter(k), anns)) for k in ("image_id", "category_id", "bbox"))
        area = [a.get("area") for a in anns]
        flags = [(a.get("iscrowd", 0), a.get("difficult", 0)) for a in anns]
    except (KeyError, TypeError, AttributeError):
        return None
    if not (_types(img) <= _INT and _types(cat) <= _INT and _types(box) <= {list} and set(map(len, box)) <= {4}
            and _types(itertools.chain.from_iterable(box)) <= _NUMBER and _types(area) <= _NUMBER | {type(None)}
            and _types(itertools.chain.from_iterable(flags)) <= _FLAG and set(itertools.chain.from_iterable(flags)) <= {0, 1}):
        return None
    bbox = np.fromiter(itertools.chain.from_iterable(box), np.float64, 4 * n).reshape(n, 4)
    area_np = np.array([np.nan if a is None else a for a in area], np.float64).reshape(n)
    area_np = np.where([a is None for a in area], bbox[:, 2] * bbox[:, 3], area_np)
    if not (np.isfinite(bbox).all() and (bbox[:, 2:] >= 0).all() and np.isfinite(area_np).all()
            and (area_np >= 0).all()):
        return None
    flags_np = np.fromiter(map(bool, itertools.chain.from_iterable(flags)), bool, 2 * n).reshape(n, 2)
    return bbox, area_np, flags_np, np.fromiter(img, np.int64, n), np.fromiter(cat, np.int64, n)


def _parse_annotations(anns: list):
    """(bbox (G, 4), area (G,), flags (G, 2) iscrowd / difficult, image ids, category ids), one
    entry at a time; the first bad one raises ValueError naming its id, image id and value."""
    bbox = np.zeros((len(anns), 4), np.float64)
    area = np.zeros(len(anns), np.float64)
    flags = np.zeros((len(anns), 2), bool)
    ann_img = np.zeros(len(anns), np.int64)
    ann_cat = np.zeros(len(anns), np.int64)
    for i, ann in enumerate(anns):
        bbox[i], area[i], flags[i], ann_img[i], ann_cat[i] = _parse_annotation(ann, _annotation_name(ann, i))
    return bbox, area, flags, ann_img, ann_cat


def _parse_annotation(ann: Any, what: str):
    image_id = _int_field(ann, "image_id", what)
    category_id = _int_field(ann, "category_id", what)
    box = _parse_bbox(ann.get("bbox"), what)
    area = ann.get("area", box[2] * box[3])
    if isinstance(area, bool) or not isinstance(area, (int, float)) or not math.isfinite(area) or area < 0:
        raise ValueError(f"{what}: area must be a finite number >= 0, got {shown(area)}")
    flags = tuple(_flag_field(ann, key, what) for key in ("iscrowd", "difficult"))
    return box, float(area), flags, image_id, category_id


def _flag_field(ann: dict, key: str, what: str) -> bool:
    """``iscrowd`` / ``difficult``: 0 or 1 (JSON true / false), absent 0; the rule of the COCO
    and VOC readers ("yes", "0", 2 are errors, not flags)."""
    value = ann.get(key, 0)
    if type(value) not in _FLAG or value not in (0, 1):
        raise ValueError(f"{what}: {key} must be 0 or 1, got {shown(value)}")
    return bool(value)


def _parse_bbox(value: Any, what: str) -> list[float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{what}: bbox must be a list of 4 numbers [x, y, w, h], got {shown(value)}")
    if not all(math.isfinite(v) for v in value):
        raise ValueError(f"{what}: bbox has a non-finite value: {shown(value)}")
    if value[2] < 0 or value[3] < 0:
        raise ValueError(f"{what}: bbox has a negative width or height: {shown(value)}")
    return [float(v) for v in value]


@dataclass(frozen=True)
class DetectionArrays:
    """All detections added so far, in the order they were added (N detections).

    Attributes:
        image_index: (N,) int64 index into ``GroundTruth.image_ids``.
        category_index: (N,) int64 index into ``GroundTruth.category_ids``.
        bbox_xywh: (N, 4) float64.
        score: (N,) float64.
    """

    image_index: np.ndarray
    category_index: np.ndarray
    bbox_xywh: np.ndarray
    score: np.ndarray


class DetectionStore:
    """Streaming store of validated detections (``add`` per image, or ``add_results``)."""

    def __init__(self, gt: GroundTruth):
        self.gt = gt
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, image_id: int, boxes_xyxy: Any, scores: Any, category_ids: Any) -> None:
        """Add one image's detections: (N, 4) xyxy absolute pixels, (N,) scores, (N,) ids."""
        what = f"detections of image {image_id}"
        bbox = xyxy_to_xywh(boxes_xyxy)
        score = _to_numpy(scores, np.float64).reshape(-1)
        cats = _to_numpy(category_ids, np.int64).reshape(-1)
        if not (len(bbox) == len(score) == len(cats)):
            raise ValueError(f"{what}: {len(bbox)} boxes, {len(score)} scores and {len(cats)} "
                             "category ids differ in number")
        img = self.gt.image_lookup(np.array([int(image_id)], np.int64), what)
        cat = self.gt.category_lookup(cats, what + ", detection {i}")
        _check_values(bbox, score, what + ", detection {i}")
        self._chunks.append((np.repeat(img, len(bbox)), cat, bbox, score))

    def add_results(self, results: list[dict]) -> None:
        """Add COCO results entries ``{image_id, category_id, bbox [x, y, w, h], score}``.

        Errors name the entry by its index in ``results`` (its position in a results file).
        """
        if not isinstance(results, list):
            raise ValueError(f"results must be a list of dicts, got {type(results).__name__}")
        with paused_gc():
            columns = _result_columns(results)
        if columns is None:
            _find_bad_entry(results)  # raises with the entry's index and value
            columns = _result_columns_any(results)  # well-formed, with numpy or other number types
        img, cat, bbox, score = columns
        what = "results entry {i}"
        img_i = self.gt.image_lookup(img, what)
        cat_i = self.gt.category_lookup(cat, what)
        _check_values(bbox, score, what)
        self._chunks.append((img_i, cat_i, bbox, score))

    def arrays(self) -> DetectionArrays:
        if not self._chunks:
            return DetectionArrays(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
        parts = list(zip(*self._chunks))
        return DetectionArrays(*(np.concatenate(p) for p in parts))


def _result_columns(results: list):
    """(image ids, category ids, bbox (N, 4), score) of plain-JSON entries, or None when an
    entry is not a dict with those keys and JSON value types (then the slow scan runs)."""
    n = len(results)
    try:
        img, cat, box, score = (list(map(itemgetter(k), results)) for k in RESULT_KEYS)
    except (KeyError, TypeError, IndexError):
        return None
    if not (_types(img) <= _INT and _types(cat) <= _INT and _types(score) <= _NUMBER and _types(box) <= {list}
            and set(map(len, box)) <= {4} and _types(itertools.chain.from_iterable(box)) <= _NUMBER):
        return None
    return (np.fromiter(img, np.int64, n), np.fromiter(cat, np.int64, n),
            np.fromiter(itertools.chain.from_iterable(box), np.float64, 4 * n).reshape(n, 4),
            np.fromiter(score, np.float64, n))


def _result_columns_any(results: list):
    """The same columns from entries that passed ``_find_bad_entry`` (numpy ints, tuples, ...)."""
    return (np.array([int(r["image_id"]) for r in results], np.int64).reshape(-1),
            np.array([int(r["category_id"]) for r in results], np.int64).reshape(-1),
            np.array([list(r["bbox"]) for r in results], np.float64).reshape(len(results), 4),
            np.array([r["score"] for r in results], np.float64).reshape(-1))


def _check_values(bbox_xywh: np.ndarray, score: np.ndarray, what: str) -> None:
    """Finite boxes and scores, width and height >= 0; ``what`` may contain ``{i}``."""
    bad_box = ~np.isfinite(bbox_xywh).all(axis=1)
    if bad_box.any():
        i = int(np.flatnonzero(bad_box)[0])
        raise ValueError(f"{what.format(i=i)}: box has a non-finite value: {bbox_xywh[i].tolist()}")
    bad = (bbox_xywh[:, 2] < 0) | (bbox_xywh[:, 3] < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what.format(i=i)}: box has a negative width or height: "
                         f"[x, y, w, h] = {bbox_xywh[i].tolist()}")
    bad = ~np.isfinite(score)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what.format(i=i)}: score is not finite: {float(score[i])!r}")


def _find_bad_entry(results: list) -> None:
    """Slow scan for the first malformed results entry; raises ValueError naming it."""
    for i, r in enumerate(results):
        what = f"results entry {i}"
        if not isinstance(r, dict):
            raise ValueError(f"{what}: must be a dict, got {shown(r)}")
        missing = [k for k in RESULT_KEYS if k not in r]
        if missing:
            raise ValueError(f"{what}: missing key(s) {missing} in {shown(r)}")
        _int_field(r, "image_id", what)
        _int_field(r, "category_id", what)
        _parse_bbox_any(r["bbox"], what)
        s = r["score"]
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise ValueError(f"{what}: score must be a number, got {shown(s)}")


def _parse_bbox_any(value: Any, what: str) -> None:
    if (not isinstance(value, (list, tuple)) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{what}: bbox must be a list of 4 numbers [x, y, w, h], got {shown(value)}")


def group_pairs(det_key: np.ndarray, gt_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (det, gt) index pairs that share a key (e.g. the same image and category).

    Args:
        det_key: (N,) int64. gt_key: (G,) int64.
    Returns:
        det_idx, gt_idx: (P,) int64, grouped by det in det order, gts in ascending gt index.
    """
    gt_order = np.argsort(gt_key, kind="stable")
    sorted_keys = gt_key[gt_order]
    start = np.searchsorted(sorted_keys, det_key, side="left")
    count = np.searchsorted(sorted_keys, det_key, side="right") - start
    det_idx = np.repeat(np.arange(len(det_key)), count)
    offsets = np.arange(len(det_idx)) - np.repeat(np.cumsum(count) - count, count)
    return det_idx, gt_order[np.repeat(start, count) + offsets]
