"""Anchor coverage analysis: which ground-truth boxes can an anchor configuration learn?

A gt box is learned only through the anchors the matcher makes positive for it. This module
runs the model's own matcher (the same ``IoUMatcher`` as training) on the model's own anchors
and reports, per gt box: its best IoU with any anchor, how many anchors are positive for it,
and whether it gets positives only through the low-quality rule.

Images that share an input size share anchors, so the caller groups images by size and calls
``match_statistics`` once per image with that size's anchors.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import torch
from torch import Tensor

from anchordet.analysis.anchors.model_anchors import ModelAnchors
from anchordet.matching.iou_matcher import POSITIVE, IoUMatcher
from anchordet.structures.boxes import box_area, box_iou

# COCO's object-size ranges (pycocotools areaRng): small < 32^2 <= medium < 96^2 <= large.
SIZE_RANGES = {"small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, math.inf)}


class MatchStatistics(NamedTuple):
    """Per gt box of one image (G boxes).

    Attributes:
        best_iou: (G,) the highest IoU of the box with any anchor.
        num_positive: (G,) int64 anchors POSITIVE and matched to this box (low-quality included).
        num_confident: (G,) int64 of those, the anchors with IoU >= the matcher's high threshold.
    """

    best_iou: Tensor
    num_positive: Tensor
    num_confident: Tensor


def match_statistics(anchors: Tensor, gt_boxes: Tensor, matcher: IoUMatcher) -> MatchStatistics:
    """The plain version: IoU against every anchor.

    Args: anchors (A, 4) xyxy; gt_boxes (G, 4) xyxy of one image, in the same pixel frame."""
    num_gt = gt_boxes.shape[0]
    if num_gt == 0 or anchors.shape[0] == 0:
        return _empty_statistics(num_gt)
    return _statistics(box_iou(gt_boxes.to(anchors.dtype), anchors), matcher)  # (G, A)


def _empty_statistics(num_gt: int) -> MatchStatistics:
    zeros = torch.zeros(num_gt, dtype=torch.int64)
    return MatchStatistics(torch.zeros(num_gt), zeros, zeros.clone())


def _statistics(iou: Tensor, matcher: IoUMatcher) -> MatchStatistics:
    """iou (G, A) -> per-gt statistics, through the training matcher."""
    num_gt = iou.shape[0]
    match = matcher.match(iou)
    positive = match.labels == POSITIVE
    matched_iou = iou.gather(0, match.gt_index[None]).squeeze(0)  # (A,) IoU with the assigned gt
    confident = positive & (matched_iou >= matcher.high_threshold)
    return MatchStatistics(
        iou.max(dim=1).values.cpu(),
        torch.bincount(match.gt_index[positive], minlength=num_gt).cpu(),
        torch.bincount(match.gt_index[confident], minlength=num_gt).cpu(),
    )


# Slack of the candidate search, in IoU and in pixels: the search may only keep too many anchors.
_IOU_SLACK = 1e-4
_PIXEL_SLACK = 1e-3


class ShapeTable(NamedTuple):
    """Every anchor shape of every level as one row (T rows), for the sparse search.
    offsets (T, 4) float64 corners relative to the lattice centre; stride (T, 2) (y, x);
    offset (T,); grid (T, 2) (H, W) int64; start (T,) first index of the level; count (T,)
    shapes per location on that level; shape (T,) index of the shape within its location."""

    offsets: Tensor
    stride: Tensor
    offset: Tensor
    grid: Tensor
    start: Tensor
    count: Tensor
    shape: Tensor


def shape_table(anchors: ModelAnchors) -> ShapeTable:
    rows = []
    for level in anchors.levels:
        count = level.offsets.shape[0]
        for s in range(count):
            rows.append((level.offsets[s], level.stride, level.offset, level.grid, level.start, count, s))
    if not rows:
        empty = torch.zeros(0, dtype=torch.int64)
        return ShapeTable(torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.float64),
                          torch.zeros(0, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.int64), empty, empty, empty)
    offsets, stride, offset, grid, start, count, shape = zip(*rows)
    f64, i64 = torch.float64, torch.int64
    return ShapeTable(torch.stack(offsets), torch.tensor(stride, dtype=f64), torch.tensor(offset, dtype=f64),
                      torch.tensor(grid, dtype=i64), torch.tensor(start, dtype=i64), torch.tensor(count, dtype=i64),
                      torch.tensor(shape, dtype=i64))


def _pair_iou(gt: Tensor, boxes: Tensor) -> Tensor:
    """gt (G, 1, 4), boxes (G, T, 4) float64 -> (G, T) IoU."""
    width = (torch.minimum(gt[..., 2], boxes[..., 2]) - torch.maximum(gt[..., 0], boxes[..., 0])).clamp(min=0)
    height = (torch.minimum(gt[..., 3], boxes[..., 3]) - torch.maximum(gt[..., 1], boxes[..., 1])).clamp(min=0)
    inter = width * height
    area = lambda b: (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    union = area(gt) + area(boxes) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), 0.0)


def candidate_anchors(anchors: ModelAnchors, gt_boxes: Tensor, image_index: Tensor | None = None,
                      table: ShapeTable | None = None) -> tuple[Tensor, Tensor]:
    """The anchors whose IoU with some gt of their image can reach min(high threshold, that gt's
    best IoU): the only anchors whose match can make a gt positive or set its best IoU.

    Args:
        gt_boxes: (G, 4) xyxy of one or many images of this size.
        image_index: (G,) int64 image of each gt (None: all of one image, index 0).
    Returns:
        (image (C,), index (C,)) int64 pairs, unique, sorted by image then anchor index;
        ``index`` points into ``anchors.boxes``.

    How: per gt and shape, the lattice point nearest to the gt's centre is a real anchor, so its
    IoU is a lower bound ``lb`` on the gt's best IoU. An anchor with IoU >= t = min(high, lb)
    needs an area ratio >= t and an intersection I >= t (A_anchor + A_gt) / (1 + t); with
    I <= min(h_anchor, h_gt) * overlap_x that bounds the centre's x to an interval (y alike):
    a window of lattice cells.
    """
    table = table if table is not None else shape_table(anchors)
    image_index = torch.zeros(len(gt_boxes), dtype=torch.int64) if image_index is None else image_index
    gt = gt_boxes.to(torch.float64)[:, None, :]  # (G, 1, 4)
    off = table.offsets[None]  # (1, T, 4)
    stride_xy, grid_wh, lattice_offset = table.stride.flip(1)[None], table.grid.flip(1)[None], table.offset[None, :, None]
    shift = (off[..., 0:2] + off[..., 2:4]) / 2  # (1, T, 2) shape centre relative to its lattice point
    nearest = torch.round(((gt[..., 0:2] + gt[..., 2:4]) / 2 - shift) / stride_xy - lattice_offset)
    nearest = torch.minimum(nearest.clamp(min=0), grid_wh - 1)  # (G, T, 2) (j, i)
    point = (nearest + lattice_offset) * stride_xy
    lower = _pair_iou(gt, point.repeat(1, 1, 2) + off)  # (G, T)
    if anchors.kept is not None:  # a dropped anchor bounds nothing
        flat = table.start + (nearest[..., 1].long() * table.grid[:, 1] + nearest[..., 0].long()) * table.count + table.shape
        lower = torch.where(anchors.kept[flat] >= 0, lower, 0.0)
    high = torch.tensor(anchors.matcher.high_threshold, dtype=torch.float64)
    threshold = (torch.minimum(lower.amax(dim=1, keepdim=True), high) - _IOU_SLACK).clamp(min=0)  # (G, 1)
    size, gt_size = off[..., 2:4] - off[..., 0:2], gt[..., 2:4] - gt[..., 0:2]  # (1, T, 2), (G, 1, 2)
    area, gt_area = size.prod(-1), gt_size.prod(-1)
    ratio = torch.minimum(area, gt_area) / torch.maximum(area, gt_area).clamp(min=1e-12)  # IoU <= ratio
    need = threshold * (area + gt_area) / (1 + threshold)  # (G, T) intersection needed
    margin = need[..., None] / torch.minimum(size, gt_size).clamp(min=1e-12).flip(-1)  # overlap needed in x, y
    low_point = gt[..., 0:2] + margin - off[..., 2:4]  # (G, T, 2) range of lattice points
    high_point = gt[..., 2:4] - margin - off[..., 0:2]
    first = torch.ceil((low_point - _PIXEL_SLACK) / stride_xy - lattice_offset).clamp(min=0).long()
    last = torch.minimum(torch.floor((high_point + _PIXEL_SLACK) / stride_xy - lattice_offset).long(), grid_wh - 1)
    extent = (last - first + 1).clamp(min=0) * (ratio >= threshold)[..., None]  # (G, T, 2) cells, 0 if pruned
    return _enumerate_windows(anchors, table, image_index, first.reshape(-1, 2), extent.reshape(-1, 2))


def _enumerate_windows(anchors: ModelAnchors, table: ShapeTable, image_index: Tensor, first: Tensor,
                       extent: Tensor) -> tuple[Tensor, Tensor]:
    """Every lattice cell of every (gt, shape) window -> unique (image, anchor index) pairs.
    first, extent: (G * T, 2) first cell (j, i) and window size (nx, ny)."""
    num_shapes = table.start.numel()
    counts = extent[:, 0] * extent[:, 1]  # (G * T,)
    pair = torch.repeat_interleave(torch.arange(counts.numel()), counts)  # (C,)
    local = torch.arange(pair.numel()) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    nx = extent[pair, 0]
    ix = first[pair, 0] + local % nx
    iy = first[pair, 1] + torch.div(local, nx, rounding_mode="floor")
    t = pair % num_shapes
    index = table.start[t] + (iy * table.grid[t, 1] + ix) * table.count[t] + table.shape[t]
    image = image_index[torch.div(pair, num_shapes, rounding_mode="floor")]
    if anchors.kept is not None:
        index = anchors.kept[index]
        image, index = image[index >= 0], index[index >= 0]
    num_anchors = max(len(anchors.boxes), 1)
    key = torch.unique(image * num_anchors + index)  # sorted: by image, then anchor
    return torch.div(key, num_anchors, rounding_mode="floor"), key % num_anchors


def sparse_match_statistics(anchors: ModelAnchors, gt_boxes_per_image: Sequence[Tensor],
                            table: ShapeTable | None = None) -> list[MatchStatistics]:
    """Per image, equal to ``match_statistics(anchors.boxes, gt_boxes, anchors.matcher)`` but
    with IoU only against ``candidate_anchors``: any other anchor has IoU below min(high, best)
    with every gt, so it is never positive and never a gt's best; the candidates keep the
    anchors' order, so "force" still picks each gt's first best anchor.

    Args: gt_boxes_per_image: B tensors (G_i, 4) xyxy, all images of ``anchors.image_size``.
    """
    table = table if table is not None else shape_table(anchors)
    counts = [len(boxes) for boxes in gt_boxes_per_image]
    if sum(counts) == 0:
        return [_empty_statistics(n) for n in counts]
    all_boxes = torch.cat([boxes.reshape(-1, 4) for boxes in gt_boxes_per_image])
    image_index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    image, index = candidate_anchors(anchors, all_boxes, image_index, table)
    index_per_image = torch.split(index, torch.bincount(image, minlength=len(counts)).tolist())
    results = []
    for boxes, candidates in zip(gt_boxes_per_image, index_per_image):
        if len(boxes) == 0 or len(candidates) == 0:
            results.append(_empty_statistics(len(boxes)))
            continue
        selected = anchors.boxes[candidates]
        results.append(_statistics(box_iou(boxes.to(selected.dtype), selected), anchors.matcher))
    return results


@dataclass
class CoverageReport:
    """Per gt box over a whole dataset (N boxes), with its image id, class and size.

    Attributes:
        image_ids: (N,) int64.  labels: (N,) int64 in 0..K-1.  boxes: (N, 4) xyxy in the
        frame the anchors live in (after the data pipeline's resize).  best_iou: (N,).
        num_positive / num_confident: (N,) int64, see ``MatchStatistics``.
    """

    image_ids: Tensor
    labels: Tensor
    boxes: Tensor
    best_iou: Tensor
    num_positive: Tensor
    num_confident: Tensor

    @property
    def covered(self) -> Tensor:
        """(N,) bool: at least one positive anchor (the box is learned at all)."""
        return self.num_positive > 0

    @property
    def low_quality_only(self) -> Tensor:
        """(N,) bool: positives only through the low-quality rule (IoU below the threshold)."""
        return (self.num_positive > 0) & (self.num_confident == 0)

    def size_group(self, name: str) -> Tensor:
        low, high = SIZE_RANGES[name]
        area = box_area(self.boxes)
        return (area >= low) & (area < high)

    def summary(self, mask: Tensor | None = None) -> dict[str, float]:
        """Shares and averages over the boxes selected by ``mask`` (all by default)."""
        mask = torch.ones_like(self.covered) if mask is None else mask
        n = int(mask.sum())
        if n == 0:
            return {"boxes": 0}
        positives = self.num_positive[mask].float()
        return {
            "boxes": n,
            "covered": float(self.covered[mask].float().mean()),
            "confident": float((self.num_confident[mask] > 0).float().mean()),
            "low_quality_only": float(self.low_quality_only[mask].float().mean()),
            "positives_mean": float(positives.mean()),
            "positives_median": float(positives.median()),
            "best_iou_mean": float(self.best_iou[mask].mean()),
        }

    def by_size(self) -> dict[str, dict[str, float]]:
        return {name: self.summary(self.size_group(name)) for name in SIZE_RANGES}

    def by_class(self, num_classes: int) -> list[dict[str, float]]:
        return [self.summary(self.labels == k) for k in range(num_classes)]

    def uncovered(self) -> list[dict]:
        """The boxes no anchor can learn, worst first: image id, class, box, best IoU."""
        index = torch.nonzero(~self.covered).flatten()
        index = index[torch.argsort(self.best_iou[index], stable=True)]
        return [{"image_id": int(self.image_ids[i]), "label": int(self.labels[i]),
                 "box": [round(v, 2) for v in self.boxes[i].tolist()], "best_iou": float(self.best_iou[i])}
                for i in index.tolist()]

    def best_iou_histogram(self, bins: int = 20) -> tuple[Tensor, Tensor]:
        """Counts (bins,) and edges (bins + 1,) of best IoU over [0, 1]."""
        return torch.histc(self.best_iou, bins=bins, min=0.0, max=1.0), torch.linspace(0, 1, bins + 1)


class AnnotatedImage(NamedTuple):
    """One image's boxes in the model's input frame, and the input size the anchors need."""

    image_id: int
    input_size: tuple[int, int]
    boxes: Tensor
    labels: Tensor


def analyze_coverage(images: Iterable[AnnotatedImage], anchors_for_size, matcher: IoUMatcher | None = None,
                     chunk_size: int = 512) -> CoverageReport:
    """Run the matcher over a dataset.

    Args:
        images: the boxes of each image (already resized as the training pipeline resizes).
        anchors_for_size: ``(height, width) ->`` either a ``ModelAnchors`` (its own matcher,
            sparse search over ``chunk_size`` images at a time) or an (A, 4) anchor tensor
            (plain IoU against every anchor, with ``matcher``); called once per distinct size.
        matcher: the model's matcher, for tensor anchors.
    Returns:
        the report, boxes in the order of ``images``.
    """
    images = list(images)
    positions_per_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for position, image in enumerate(images):
        positions_per_size[tuple(image.input_size)].append(position)
    stats: list[MatchStatistics | None] = [None] * len(images)
    for size, positions in positions_per_size.items():
        anchors = anchors_for_size(size)
        if isinstance(anchors, ModelAnchors):
            table = shape_table(anchors)
            for start in range(0, len(positions), chunk_size):
                part = positions[start:start + chunk_size]
                boxes = [images[p].boxes.float().reshape(-1, 4) for p in part]
                for p, result in zip(part, sparse_match_statistics(anchors, boxes, table)):
                    stats[p] = result
        else:
            for p in positions:
                stats[p] = match_statistics(anchors, images[p].boxes.float().reshape(-1, 4), matcher)
    if not images:
        return CoverageReport(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4),
                              torch.zeros(0), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    return CoverageReport(
        torch.cat([torch.full((len(i.labels),), i.image_id, dtype=torch.int64) for i in images]),
        torch.cat([i.labels.to(torch.int64) for i in images]),
        torch.cat([i.boxes.float().reshape(-1, 4) for i in images]),
        torch.cat([s.best_iou.float() for s in stats]),
        torch.cat([s.num_positive for s in stats]),
        torch.cat([s.num_confident for s in stats]),
    )


class DatasetBoxes(NamedTuple):
    """The analysis input read from a dataset: ``images`` (boxes already resized), the class
    names, the number of source images, and what was left out (ignored / bad / resized away)."""

    images: list[AnnotatedImage]
    class_names: list[str]
    num_images: int
    skipped: dict[str, int]


def resize_for_training(boxes: Tensor, image_size: tuple[int, int], data) -> tuple[Tensor, tuple[int, int]]:
    """Boxes (N, 4) of an image of ``image_size`` (h, w) -> boxes in the training input, and its
    size: the data pipeline's resize of ``data.train_transform`` (``data.transforms.resize_step``:
    "resize" keeps the ratio, with several ``data.min_size`` at the largest, the eval size;
    "fixed" and "ssd" end at (fixed_size, fixed_size)), applied to the boxes alone. Random parts
    (flip, SSD crops and zoom-out) are left out: they move boxes, the analysis wants the typical
    scale."""
    from anchordet.data.transforms import resize_step, scale_boxes
    from anchordet.structures.boxes import clip_boxes

    new = resize_step(data, data.train_transform).output_size(*image_size)
    boxes = clip_boxes(scale_boxes(boxes.float().reshape(-1, 4), image_size, new), new)
    return boxes, new


def read_dataset_boxes(data, split: str = "train", max_images: int | None = None) -> DatasetBoxes:
    """Every trainable gt box of a split, resized as training resizes, without decoding images:
    the digits dataset's generated annotations, or the annotation files of a COCO / VOC / YOLO
    split (image sizes from the files, or from the image headers where the files lack them).

    Args:
        data: a ``DataConfig`` (dataset, transforms and sizes).
        max_images: the first N images only.
    """
    from anchordet.engine.data import dataset_spec

    spec = dataset_spec(data)
    skipped = {"ignored": 0, "bad": 0, "empty_after_resize": 0}
    images = []
    for image_id, size, boxes, labels in _raw_annotations(spec, split, max_images, skipped):
        resized, input_size = resize_for_training(boxes, size, data)
        keep = (resized[:, 2] > resized[:, 0]) & (resized[:, 3] > resized[:, 1])
        skipped["empty_after_resize"] += int((~keep).sum())
        images.append(AnnotatedImage(image_id, input_size, resized[keep], labels[keep]))
    return DatasetBoxes(images, list(spec.class_names), len(images), skipped)


def _raw_annotations(spec, split: str, max_images: int | None, skipped: dict):
    """Yield (image id, (h, w), boxes (N, 4) float, labels (N,) int64) per image."""
    if spec.format == "digits":
        from anchordet.data.spec import build_dataset

        dataset = build_dataset(spec, split)
        side = spec.digits.canvas_size
        for index in range(min(len(dataset), max_images or len(dataset))):
            targets = dataset.read_annotations(index)
            trainable = targets.trainable
            skipped["ignored"] += len(targets) - len(trainable)
            yield index, (side, side), trainable.boxes, trainable.labels
        return
    from anchordet.data.image_io import image_size
    from anchordet.data.spec import read_records
    from anchordet.data.validate import check_annotation

    records = read_records(spec, split)
    skipped["bad"] += len(records.problems)
    for record in records.images[:max_images]:
        size = record.size if record.size is not None else image_size(record.path)
        boxes, labels = [], []
        for ann in record.annotations:
            if check_annotation(ann, record, records.label_of, records.normalized) is not None:
                skipped["bad"] += 1
            elif ann.ignore:
                skipped["ignored"] += 1
            else:
                box = ann.box if not records.normalized else (ann.box[0] * size[1], ann.box[1] * size[0],
                                                              ann.box[2] * size[1], ann.box[3] * size[0])
                boxes.append(box)
                labels.append(records.label_of[ann.category])
        yield (record.image_id, tuple(size), torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
               torch.tensor(labels, dtype=torch.int64))
