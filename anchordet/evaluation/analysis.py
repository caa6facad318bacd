"""Why is AP low? ``anchordet score ... --analyze`` and ``anchordet evaluate ... --analyze``.

Three views of one set of detections against COCO-style ground truth, all torch-free:

- the TIDE breakdown (``anchordet.evaluation.tide``): the AP that fixing each error type
  would recover;
- precision, recall and F1 against the score threshold, per class and over all classes (the
  counts summed over classes), on TIDE's matching (IoU >= 0.5, the top 100 detections per image,
  detections in ignore regions left out): a detection counts at threshold t when its score >= t,
  as ``anchordet predict --score-thresh t`` keeps it. Greedy matching runs in score order, so the
  true positives above t are the same whichever t: one matching gives every threshold. Where no
  detection is kept, precision is 1 (no false positive) and F1 is 0;
- a confusion matrix at one score threshold (default: the threshold of best overall F1): rows
  are the ground-truth classes plus "background" (detections matching no ground truth), columns
  the predicted classes plus "missed" (ground truth matching no detection). Detections and
  ground truth are paired whatever their classes, at IoU >= 0.5, one to one: each detection
  keeps its highest-IoU ground truth, then each ground truth its highest-IoU detection (the rule
  of Ultralytics' ConfusionMatrix). Unpaired detections inside an ignore region of their class
  are not counted.

``analysis_plots.write_analysis`` writes ``tide.json``, ``f1.json``, ``confusion.json`` and the PNGs
``f1_overall.png`` (over all classes), ``prf_per_class.png`` (precision, recall, F1 of every
class) and ``confusion.png``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anchordet.evaluation.results import DetectionArrays, GroundTruth
from anchordet.evaluation.tide import TideBreakdown, TideMatching, tide

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class ThresholdCurves:
    """Precision / recall / F1 at each score threshold (T thresholds, K classes).

    Attributes:
        thresholds: (T,) float64 ascending.
        precision, recall, f1: (K, T) per class; overall_*: (T,) over all classes.
        num_gt: (K,) regular ground truth per class (recall is 0 where it is 0).
        category_names: the K names.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    overall_precision: np.ndarray
    overall_recall: np.ndarray
    overall_f1: np.ndarray
    num_gt: np.ndarray
    category_names: list[str]

    def best(self, k: int | None = None) -> dict[str, float]:
        """The threshold of best F1, overall or of class ``k``. On ties the highest one: it keeps
        the same detections here and fewer low-score ones on other images."""
        f1 = self.overall_f1 if k is None else self.f1[k]
        p = self.overall_precision if k is None else self.precision[k]
        r = self.overall_recall if k is None else self.recall[k]
        i = len(f1) - 1 - int(np.argmax(f1[::-1]))
        return {"threshold": float(self.thresholds[i]), "f1": float(f1[i]), "precision": float(p[i]),
                "recall": float(r[i])}

    def to_dict(self) -> dict:
        def curves(p, r, f):
            return {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist()}

        return {"iou_threshold": IOU_THRESHOLD, "thresholds": self.thresholds.tolist(),
                "overall": {**curves(self.overall_precision, self.overall_recall, self.overall_f1),
                            "best": self.best()},
                "per_class": {name: {**curves(self.precision[k], self.recall[k], self.f1[k]),
                                     "num_gt": int(self.num_gt[k]), "best": self.best(k)}
                              for k, name in enumerate(self.category_names)}}


@dataclass(frozen=True)
class ConfusionMatrix:
    """(K + 1, K + 1) counts: rows ground truth (last: background), columns predicted (last: missed)."""

    matrix: np.ndarray
    labels: list[str]
    score_threshold: float

    def to_dict(self) -> dict:
        return {"score_threshold": self.score_threshold, "iou_threshold": IOU_THRESHOLD,
                "rows": "ground truth class, then 'background' (detections matching no ground truth)",
                "columns": "predicted class, then 'missed' (ground truth matching no detection)",
                "row_labels": self.labels[:-1] + ["background"], "column_labels": self.labels[:-1] + ["missed"],
                "matrix": self.matrix.tolist()}


@dataclass(frozen=True)
class ErrorAnalysis:
    """Everything ``--analyze`` reports."""

    tide: TideBreakdown
    curves: ThresholdCurves
    confusion: ConfusionMatrix

    def table(self) -> str:
        best = self.curves.best()
        if best["f1"] == 0:
            line = f" F1 is 0 at every score threshold: no detection matches a ground-truth object at IoU {IOU_THRESHOLD:g}"
        else:
            line = (f" best F1 {best['f1']:.3f} at score >= {best['threshold']:.2f} (precision {best['precision']:.3f}, "
                    f"recall {best['recall']:.3f}, IoU {IOU_THRESHOLD:g}): the threshold to pass to "
                    f"`anchordet predict --score-thresh`")
        return "\n".join([self.tide.table(), line])


def analyze(gt: GroundTruth, dets: DetectionArrays, score_threshold: float | None = None) -> ErrorAnalysis:
    """TIDE breakdown, threshold curves and confusion matrix (at ``score_threshold``, default
    the threshold of best overall F1)."""
    matching, breakdown = tide(gt, dets, pos_thresh=IOU_THRESHOLD)
    curves = threshold_curves(matching, dets.score, gt.category_names)
    if score_threshold is None:
        score_threshold = curves.best()["threshold"]
    confusion = confusion_matrix(matching, gt, float(score_threshold))
    return ErrorAnalysis(breakdown, curves, confusion)


def score_grid(score: np.ndarray) -> np.ndarray:
    """0.00, 0.01, ..., 1.00 (exact two-decimal values) when every score is in [0, 1]; else 101
    points from the lowest to the highest score."""
    if len(score) == 0 or (score.min() >= 0 and score.max() <= 1):
        return np.arange(101) / 100
    return np.linspace(score.min(), score.max(), 101)


def threshold_curves(m: TideMatching, all_scores: np.ndarray, names: list[str]) -> ThresholdCurves:
    """Precision / recall / F1 per class and overall on the grid of ``score_grid``."""
    num_cats = len(m.num_pos)
    thresholds = score_grid(all_scores)
    counted = ~m.ignored
    # step[d]: the last threshold index with threshold <= score: d counts at thresholds 0..step
    step = np.searchsorted(thresholds, m.score[counted], side="right") - 1
    cats = m.category[counted]
    ok = step >= 0
    width = len(thresholds)

    def at_or_above(mask):  # (K, T): detections of each class with score >= each threshold
        hist = np.bincount(cats[mask & ok] * width + step[mask & ok], minlength=num_cats * width)
        return np.cumsum(hist.reshape(num_cats, width)[:, ::-1], axis=1)[:, ::-1]

    kept = at_or_above(np.ones(len(cats), bool)).astype(np.float64)
    tp = at_or_above(m.tp[counted]).astype(np.float64)
    num_gt = m.num_pos.astype(np.float64)
    precision, recall, f1 = _prf(tp, kept, num_gt[:, None])
    overall = _prf(tp.sum(axis=0), kept.sum(axis=0), num_gt.sum())
    return ThresholdCurves(thresholds, precision, recall, f1, *overall, m.num_pos.copy(), list(names))


def _prf(tp, kept, num_gt):
    """precision (1 where nothing is kept), recall (0 without gt), F1 (0 where P + R = 0)."""
    precision = np.divide(tp, kept, out=np.ones(np.broadcast(tp, kept).shape), where=kept > 0)
    recall = np.divide(tp, num_gt, out=np.zeros(np.broadcast(tp, num_gt).shape), where=num_gt > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return precision, recall, f1


def confusion_matrix(m: TideMatching, gt: GroundTruth, score_threshold: float) -> ConfusionMatrix:
    """The class-agnostic one-to-one pairing of the module docstring, counted by class."""
    num_cats = len(gt.category_ids)
    kept = m.score >= score_threshold
    sel = kept[m.pair_det] & (m.pair_iou >= IOU_THRESHOLD)
    det, gti, iou = m.pair_det[sel], m.pair_gt[sel], m.pair_iou[sel]
    order = np.argsort(-iou, kind="stable")
    det, gti = det[order], gti[order]
    _, first = np.unique(det, return_index=True)  # each detection: its highest-IoU gt
    det, gti = det[np.sort(first)], gti[np.sort(first)]  # still by IoU, descending
    _, first = np.unique(gti, return_index=True)  # then each gt: its highest-IoU detection
    det, gti = det[first], gti[first]
    matrix = np.zeros((num_cats + 1, num_cats + 1), np.int64)
    np.add.at(matrix, (gt.category_index[gti], m.category[det]), 1)
    det_paired = np.zeros(len(m.score), bool)
    det_paired[det] = True
    background = kept & ~det_paired & ~m.in_ignore_region
    matrix[num_cats, :num_cats] = np.bincount(m.category[background], minlength=num_cats)
    gt_paired = np.zeros(len(gt.category_index), bool)
    gt_paired[gti] = True
    missed = m.gt_regular & ~gt_paired
    matrix[:num_cats, num_cats] = np.bincount(gt.category_index[missed], minlength=num_cats)
    return ConfusionMatrix(matrix, list(gt.category_names) + ["background"], score_threshold)
