"""Precision, recall and F1 at one IoU and one score threshold, overall and per image.

What users of large images with many objects report (DeepForest's convention is IoU 0.4), beside
the COCO numbers: ``anchordet score ... --iou 0.4`` and ``anchordet evaluate ... --iou 0.4``.
Torch-free (``score`` never imports torch).

Matching, per image and category (a detection only matches ground truth of its own class):
- per image the top ``max_dets`` detections by score are kept (all classes together; ties keep
  the order added), as ``predict`` caps an image;
- detections in decreasing score order (stable) each take the unmatched regular ground truth of
  highest IoU, if that IoU is >= ``iou`` (ties: the first ground truth in the file's order);
- a detection left unmatched that overlaps an ignored ground truth (crowd, VOC difficult) at
  >= ``iou`` (for a crowd, intersection over the detection's area, as COCO does) counts neither
  as a true nor as a false positive; ignored ground truth is never missed.

Greedy matching in score order does not depend on the score threshold, so one matching gives
every threshold: at threshold t the detections scoring >= t count (as ``predict --score-thresh``
keeps them). ``precision = TP / (TP + FP)``, ``recall = TP / regular ground truth``, ``F1 = 2 TP /
(2 TP + FP + FN)`` (the harmonic mean of the two, defined also where one of them is not). Per
image a precision without detections or a recall without ground truth is None (JSON null).
The default threshold is the one of best overall F1 (the highest such score on ties).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anchordet.evaluation.results import DetectionArrays, GroundTruth


@dataclass(frozen=True)
class Matching:
    """The outcome of each kept detection (D of them).

    Attributes:
        image_index: (D,) int64. score: (D,) float64.
        true_positive: (D,) bool. ignored: (D,) bool (matched an ignore region, not counted).
        num_gt: (I,) int64 regular ground truth per image.
    """

    image_index: np.ndarray
    score: np.ndarray
    true_positive: np.ndarray
    ignored: np.ndarray
    num_gt: np.ndarray


def _iou_xywh(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """(d, 4) x (g, 4) xywh -> (d, g) IoU; against a crowd gt: intersection / detection area."""
    w = np.minimum(det[:, None, 0] + det[:, None, 2], gt[None, :, 0] + gt[None, :, 2]) - np.maximum(det[:, None, 0], gt[None, :, 0])
    h = np.minimum(det[:, None, 1] + det[:, None, 3], gt[None, :, 1] + gt[None, :, 3]) - np.maximum(det[:, None, 1], gt[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    det_area = (det[:, 2] * det[:, 3])[:, None]
    union = np.where(crowd[None, :], det_area, det_area + (gt[:, 2] * gt[:, 3])[None, :] - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match(gt: GroundTruth, dets: DetectionArrays, iou: float, max_dets: int = 100) -> Matching:
    """Greedy matching at ``iou`` (module docstring)."""
    num_images = len(gt.image_ids)
    order = np.lexsort((-dets.score, dets.image_index))  # stable: ties keep the order added
    first = np.searchsorted(dets.image_index[order], dets.image_index[order], side="left")
    keep = order[np.arange(len(order)) - first < max_dets]
    image, cat, score, box = dets.image_index[keep], dets.category_index[keep], dets.score[keep], dets.bbox_xywh[keep]
    ignore_gt = gt.iscrowd | gt.difficult
    true_positive = np.zeros(len(keep), bool)
    ignored = np.zeros(len(keep), bool)
    num_cats = len(gt.category_ids)
    det_key, gt_key = image * num_cats + cat, gt.image_index * num_cats + gt.category_index
    det_order = np.lexsort((-score, det_key))
    gt_order = np.argsort(gt_key, kind="stable")
    det_bounds = np.searchsorted(det_key[det_order], np.unique(det_key), side="left")
    for start, stop in zip(det_bounds, list(det_bounds[1:]) + [len(det_order)]):
        rows = det_order[start:stop]  # one (image, category), best score first
        key = det_key[rows[0]]
        lo, hi = np.searchsorted(gt_key[gt_order], [key, key + 1], side="left")
        cols = gt_order[lo:hi]  # its ground truth, in the file's order
        if not len(cols):
            continue
        overlaps = _iou_xywh(box[rows], gt.bbox_xywh[cols], gt.iscrowd[cols])
        regular = ~ignore_gt[cols]
        taken = np.zeros(len(cols), bool)
        for r, values in zip(rows, overlaps):
            candidates = np.where(regular & ~taken & (values >= iou), values, -1.0)
            best = int(np.argmax(candidates))
            if candidates[best] >= 0:
                taken[best] = True
                true_positive[r] = True
            elif ((values >= iou) & ~regular).any():
                ignored[r] = True
    num_gt = np.bincount(gt.image_index[~ignore_gt], minlength=num_images).astype(np.int64)
    return Matching(image, score, true_positive, ignored, num_gt)


def _f1(tp, fp, fn):
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def best_f1_threshold(m: Matching) -> float:
    """The score threshold of best overall F1 (the highest one on ties); 1.0 without detections."""
    counted = ~m.ignored
    scores, tps = m.score[counted], m.true_positive[counted]
    if not len(scores):
        return 1.0
    order = np.argsort(-scores, kind="stable")
    scores, tps = scores[order], tps[order]
    last = np.r_[scores[1:] != scores[:-1], True]  # keep t = a score: all detections >= t count
    tp = np.cumsum(tps)[last]
    fp = np.cumsum(~tps)[last]
    f1 = _f1(tp, fp, int(m.num_gt.sum()) - tp)
    return float(scores[last][int(np.argmax(f1))])  # argmax takes the first: the highest threshold


@dataclass(frozen=True)
class PrecisionRecall:
    """Precision / recall / F1 at ``iou`` and ``score_threshold``, overall and per image.

    Attributes:
        overall: {"tp", "fp", "fn", "num_gt", "num_det", "precision", "recall", "f1"}.
        per_image: one such dict per ground-truth image (plus "image_id"), in image-id order.
        threshold_kind: "best-F1" or "given".
    """

    iou: float
    score_threshold: float
    threshold_kind: str
    max_dets: int
    overall: dict
    per_image: list[dict]

    def to_dict(self) -> dict:
        return {"iou": self.iou, "score_threshold": self.score_threshold, "threshold": self.threshold_kind,
                "max_dets": self.max_dets, "overall": self.overall, "per_image": self.per_image}

    def table(self, max_rows: int = 20) -> str:
        """Overall, then per image (the ``max_rows`` of lowest F1 when there are more)."""
        o = self.overall
        lines = [f" precision / recall / F1 at IoU {self.iou:g}, score >= {self.score_threshold:.4g} "
                 f"({self.threshold_kind}), {self.max_dets} detections per image at most",
                 f" overall: precision {_fmt(o['precision'])}  recall {_fmt(o['recall'])}  F1 {_fmt(o['f1'])}  "
                 f"(TP {o['tp']}, FP {o['fp']}, FN {o['fn']}; {o['num_gt']} objects, {o['num_det']} detections)"]
        rows = self.per_image
        if len(rows) > max_rows:
            rows = sorted(rows, key=lambda r: (r["f1"] if r["f1"] is not None else 2.0, r["image_id"]))[:max_rows]
            lines.append(f" per image (the {max_rows} of lowest F1 of {len(self.per_image)}; the JSON has all):")
        else:
            lines.append(" per image:")
        lines.append(f" {'image_id':>10} {'objects':>8} {'dets':>6} {'TP':>6} {'FP':>6} {'FN':>6} "
                     f"{'precision':>9} {'recall':>7} {'F1':>6}")
        for r in rows:
            lines.append(f" {r['image_id']:>10} {r['num_gt']:>8} {r['num_det']:>6} {r['tp']:>6} {r['fp']:>6} {r['fn']:>6} "
                         f"{_fmt(r['precision']):>9} {_fmt(r['recall']):>7} {_fmt(r['f1']):>6}")
        return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _counts(tp: int, fp: int, num_gt: int) -> dict:
    fn = num_gt - tp
    num_det = tp + fp
    return {"tp": tp, "fp": fp, "fn": fn, "num_gt": num_gt, "num_det": num_det,
            "precision": tp / num_det if num_det else None, "recall": tp / num_gt if num_gt else None,
            "f1": float(_f1(np.array(tp), np.array(fp), np.array(fn))) if num_gt + num_det else None}


def precision_recall(gt: GroundTruth, dets: DetectionArrays, iou: float = 0.5, score_threshold: float | None = None,
                     max_dets: int = 100) -> PrecisionRecall:
    """Match at ``iou`` and count at ``score_threshold`` (None: the best-F1 one)."""
    if not 0.0 < float(iou) <= 1.0:
        raise ValueError(f"iou must be in (0, 1], got {iou}")
    m = match(gt, dets, float(iou), max_dets)
    kind = "best-F1" if score_threshold is None else "given"
    threshold = best_f1_threshold(m) if score_threshold is None else float(score_threshold)
    counted = (m.score >= threshold) & ~m.ignored
    num_images = len(gt.image_ids)
    tp = np.bincount(m.image_index[counted & m.true_positive], minlength=num_images)
    fp = np.bincount(m.image_index[counted & ~m.true_positive], minlength=num_images)
    per_image = [{"image_id": int(image_id), **_counts(int(t), int(f), int(g))}
                 for image_id, t, f, g in zip(gt.image_ids.tolist(), tp, fp, m.num_gt)]
    overall = _counts(int(tp.sum()), int(fp.sum()), int(m.num_gt.sum()))
    return PrecisionRecall(float(iou), threshold, kind, int(max_dets), overall, per_image)
