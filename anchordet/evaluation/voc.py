"""PASCAL VOC detection AP: VOC2007 11-point and VOC2010+ area ("all points") variants.

Rules of the official Matlab devkit (VOCevaldet.m, VOCap.m):
- per class, detections are sorted by score, best first (stable: ties keep the order added);
- each detection looks at every gt of its class in its image and takes the one with the
  highest IoU (the first one on ties); if that IoU >= the threshold it is a true positive,
  unless that gt was already taken (false positive) or is ``difficult`` (neither: ignored);
  otherwise it is a false positive. ``iscrowd`` regions are ignored like ``difficult`` ones;
- recall = TP / (number of non-difficult gts), precision = TP / (TP + FP);
- 11-point AP averages max precision at recall >= 0, 0.1, ..., 1 (thresholds ``k / 10``);
  area AP integrates the monotone precision envelope over recall.

Coordinates are continuous (contract 2), so IoU uses ``x2 - x1``, not the devkit's
``x2 - x1 + 1`` for inclusive integer pixels; a VOC reader that converts the devkit's
1-based inclusive boxes to continuous ones (``x1 - 1, y1 - 1, x2, y2``) gets the same IoUs.
A class without non-difficult gt has AP -1 and is left out of the mAP.

Vectorized: a detection's gt choice does not depend on earlier detections, only whether the
gt is still free does, so a TP is simply the first detection (in score order) to choose a gt.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anchordet.evaluation.results import DetectionArrays, DetectionStore, GroundTruth, group_pairs

VOC07_RECALL_POINTS = np.arange(11) / 10  # 0, 0.1, ..., 1 (VOCevaldet.m: t = 0:0.1:1)


@dataclass
class VocMetrics:
    """Result of :meth:`VocEvaluator.summarize`.

    Attributes:
        mAP: mean AP over classes with non-difficult gt (-1.0 if there is none).
        per_class: {class name: AP} (-1.0 for a class without non-difficult gt).
        recall, precision: {class name: (n,) float64} the raw curves, one point per
            non-ignored detection in score order.
        iou_threshold, use_07_metric: the settings used.
    """

    mAP: float
    per_class: dict[str, float]
    recall: dict[str, np.ndarray]
    precision: dict[str, np.ndarray]
    iou_threshold: float
    use_07_metric: bool

    def to_dict(self) -> dict[str, Any]:
        return {"mAP": float(self.mAP), "per_class": {k: float(v) for k, v in self.per_class.items()}}

    def table(self) -> str:
        kind = "VOC07 11-point" if self.use_07_metric else "VOC area"
        width = max([len(n) for n in self.per_class] + [5])
        lines = [f" {kind} AP @ IoU >= {self.iou_threshold:g}", f" {'class':<{width}}  AP"]
        lines += [f" {n:<{width}}  {v:0.4f}" for n, v in self.per_class.items()]
        lines.append(f" {'mAP':<{width}}  {self.mAP:0.4f}")
        return "\n".join(lines)


class VocEvaluator:
    """Streaming VOC evaluator with the same ``add`` / ``add_results`` / ``summarize`` API as
    :class:`~anchordet.evaluation.CocoEvaluator`.

    Args:
        gt: COCO-style ground truth (dict or JSON path); annotations with ``"difficult": 1``
            or ``"iscrowd": 1`` are ignored as the devkit ignores difficult objects.
        iou_threshold: minimum IoU of a true positive (VOC: 0.5).
        use_07_metric: True for the VOC2007 11-point AP, False for the VOC2010+ area AP.
    """

    def __init__(self, gt: dict | str | Path, iou_threshold: float = 0.5, use_07_metric: bool = True):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.gt = GroundTruth.load(gt)
        self.iou_threshold = float(iou_threshold)
        self.use_07_metric = bool(use_07_metric)
        self._store = DetectionStore(self.gt)

    def add(self, image_id: int, boxes: Any, scores: Any, category_ids: Any) -> None:
        """Add one image's detections: (N, 4) xyxy absolute pixels, (N,) scores, (N,) ids."""
        self._store.add(image_id, boxes, scores, category_ids)

    def add_results(self, results: list[dict]) -> None:
        """Add COCO results entries ``{image_id, category_id, bbox [x, y, w, h], score}``."""
        self._store.add_results(results)

    def detections(self) -> DetectionArrays:
        """Everything added so far as flat arrays (what ``anchordet.evaluation.analysis`` reads)."""
        return self._store.arrays()

    def summarize(self) -> VocMetrics:
        return evaluate_voc(self.gt, self._store.arrays(), self.iou_threshold, self.use_07_metric)


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """AP from a precision/recall curve (n,) in score order (VOCevaldet.m / VOCap.m)."""
    if use_07_metric:
        ap = 0.0
        for t in VOC07_RECALL_POINTS:
            above = precision[recall >= t]
            ap += (above.max() if len(above) else 0.0) / 11
        return float(ap)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def voc_iou(det_xywh: np.ndarray, gt_xywh: np.ndarray) -> np.ndarray:
    """Element-wise IoU of (P, 4) ``[x, y, w, h]`` boxes (continuous coordinates); 0 if disjoint."""
    d1, d2 = det_xywh[:, :2], det_xywh[:, :2] + det_xywh[:, 2:]
    g1, g2 = gt_xywh[:, :2], gt_xywh[:, :2] + gt_xywh[:, 2:]
    wh = np.minimum(d2, g2) - np.maximum(d1, g1)
    ok = (wh > 0).all(axis=1)
    inter = wh[:, 0] * wh[:, 1]
    union = np.prod(d2 - d1, axis=1) + np.prod(g2 - g1, axis=1) - inter
    return np.where(ok, inter / np.where(ok, union, 1.0), 0.0)


def _best_gt(dets: DetectionArrays, gt: GroundTruth) -> tuple[np.ndarray, np.ndarray]:
    """Per detection the highest-IoU gt of its class and image (first on ties).

    Returns best_iou (N,) float64 (-inf without gt) and best_gt (N,) int64 (-1 without gt).
    """
    num_images = len(gt.image_ids)
    di, gi = group_pairs(dets.category_index * num_images + dets.image_index,
                         gt.category_index * num_images + gt.image_index)
    iou = voc_iou(dets.bbox_xywh[di], gt.bbox_xywh[gi])
    order = np.lexsort((gi, -iou, di))  # per det: highest IoU first, then lowest gt index
    di, gi, iou = di[order], gi[order], iou[order]
    first = np.ones(len(di), bool)
    first[1:] = di[1:] != di[:-1]
    best_iou = np.full(len(dets.score), -np.inf)
    best_gt = np.full(len(dets.score), -1, np.int64)
    best_iou[di[first]], best_gt[di[first]] = iou[first], gi[first]
    return best_iou, best_gt


def evaluate_voc(gt: GroundTruth, dets: DetectionArrays, iou_threshold: float,
                 use_07_metric: bool) -> VocMetrics:
    """Per-class AP and mAP for all detections at once."""
    gt_ignore = gt.difficult | gt.iscrowd
    best_iou, best_gt = _best_gt(dets, gt)
    order = np.lexsort((-dets.score, dets.category_index))  # stable: ties keep the order added
    hit = best_iou[order] >= iou_threshold
    ignored = hit & gt_ignore[np.maximum(best_gt[order], 0)]
    claim = np.flatnonzero(hit & ~ignored)
    _, first_claim = np.unique(best_gt[order][claim], return_index=True)
    tp = np.zeros(len(order), bool)
    tp[claim[first_claim]] = True  # the first detection to choose a free gt takes it
    num_pos = np.bincount(gt.category_index[~gt_ignore], minlength=len(gt.category_ids))
    cats = dets.category_index[order]
    per_class, recalls, precisions = {}, {}, {}
    for k, name in enumerate(gt.category_names):
        in_class = (cats == k) & ~ignored
        tp_cum = np.cumsum(tp[in_class]).astype(np.float64)
        fp_cum = np.cumsum(~tp[in_class]).astype(np.float64)
        rec = tp_cum / max(num_pos[k], 1)
        prec = tp_cum / (tp_cum + fp_cum)
        recalls[name], precisions[name] = rec, prec
        per_class[name] = voc_ap(rec, prec, use_07_metric) if num_pos[k] > 0 else -1.0
    defined = [v for k, v in enumerate(per_class.values()) if num_pos[k] > 0]
    mean_ap = float(np.mean(defined)) if defined else -1.0
    return VocMetrics(mAP=mean_ap, per_class=per_class, recall=recalls, precision=precisions,
                      iou_threshold=iou_threshold, use_07_metric=use_07_metric)
