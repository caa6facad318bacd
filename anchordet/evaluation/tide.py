"""TIDE error breakdown (Bolya et al., "TIDE: A General Toolbox for Identifying Object Detection
Errors", ECCV 2020), vectorized, with the rules of the authors' ``tidecv`` 1.0.1 (bbox mode).

Per image the top ``max_dets`` = 100 detections by score (all classes together; ties keep the
order added) are matched greedily in score order: each takes the unused ground truth of its class
with the highest IoU (the first on ties) if that IoU >= ``pos_thresh`` (0.5). Ignore regions
(``iscrowd`` or ``difficult`` ground truth) take no part in matching; an unmatched detection whose
crowd IoU (intersection / detection area) with a region of its class is > 0.5 is ignored for AP.
Every unmatched detection (ignored ones too) gets the first error that applies:

- no regular ground truth in the image: **Bkg** (background);
- best same-class IoU in [``bg_thresh``, ``pos_thresh``] (0.1, 0.5): **Loc** (localization);
- IoU >= 0.5 with a ground truth of another class: **Cls** (classification);
- IoU >= 0.5 with a same-class ground truth already matched: **Dupe** (duplicate);
- IoU <= 0.1 with every ground truth: **Bkg**;
- otherwise **Both** (wrong class and poorly localized).

A ground truth left unmatched is **Miss** unless a Cls or Loc error points at it. The breakdown
is the AP gained by fixing one type at a time (dAP, clipped at 0): Cls / Loc errors become true
positives (in the ground truth's class / their own class; of several errors on one ground truth
only the highest-scoring one, the others are removed), Dupe / Bkg / Both detections are removed,
Miss ground truth is removed from the positives. The two special figures are perfect precision
(every false positive scored 0: **FalsePos**) and perfect recall without touching precision (every
unmatched ground truth removed: **FalseNeg**). AP is TIDE's: one IoU threshold, the 101-point COCO
interpolation per class, averaged over the classes that have ground truth or detections, in AP
points (0-100) as TIDE prints them.

Where a tie in score makes the order matter, tidecv orders detections by its internal lists
(images in file order); here images are in id order. With distinct scores the figures are equal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anchordet.evaluation.coco import coco_iou
from anchordet.evaluation.results import DetectionArrays, GroundTruth, group_pairs

ERROR_TYPES = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
SPECIAL_TYPES = ("FalsePos", "FalseNeg")
ERROR_NAMES = {"Cls": "classification", "Loc": "localization", "Both": "class and location",
               "Dupe": "duplicate", "Bkg": "background", "Miss": "missed",
               "FalsePos": "all false positives", "FalseNeg": "all false negatives"}
_NO_ERROR, CLS, LOC, BOTH, DUPE, BKG = -1, 0, 1, 2, 3, 4  # codes of TideMatching.error
RECALL_POINTS = np.array([x / 100 for x in range(101)])  # tidecv's x_range (not linspace: same bits)


@dataclass(frozen=True)
class TideMatching:
    """TIDE's matching and error types. P kept detections in (image, rank) order, G gts, K classes.

    Attributes:
        det_index: (P,) int64 index into the ``DetectionArrays`` given.
        image, category: (P,) int64 indices into the ground truth's images / categories.
        score: (P,) float64. tp: (P,) bool, matched at IoU >= pos_thresh.
        ignored: (P,) bool, unmatched and inside an ignore region of its class (no AP point).
        in_ignore_region: (P,) bool, inside such a region, matched or not.
        error: (P,) int8, -1 for a true positive, else CLS, LOC, BOTH, DUPE or BKG.
        fix_category: (P,) int64, the class a Cls / Loc error becomes a true positive in when it
            is fixed, -1 when fixing removes it.
        gt_regular: (G,) bool, not iscrowd / difficult. gt_used, gt_missed: (G,) bool.
        gt_category: (G,) int64 category index of every gt.
        num_pos: (K,) int64 regular ground truth per class.
        pair_det, pair_gt, pair_iou: (Q,) every (detection, regular gt) pair of one image.
    """

    det_index: np.ndarray
    image: np.ndarray
    category: np.ndarray
    score: np.ndarray
    tp: np.ndarray
    ignored: np.ndarray
    in_ignore_region: np.ndarray
    error: np.ndarray
    fix_category: np.ndarray
    gt_regular: np.ndarray
    gt_used: np.ndarray
    gt_missed: np.ndarray
    gt_category: np.ndarray
    num_pos: np.ndarray
    pair_det: np.ndarray
    pair_gt: np.ndarray
    pair_iou: np.ndarray


@dataclass(frozen=True)
class TideBreakdown:
    """TIDE's figures, in AP points (0-100).

    Attributes:
        ap: TIDE's AP at ``pos_thresh``. dap: {type: AP gained by fixing it} for ``ERROR_TYPES``
        then ``SPECIAL_TYPES``. counts: {type: number of errors} for ``ERROR_TYPES``.
    """

    ap: float
    dap: dict[str, float]
    counts: dict[str, int]
    pos_thresh: float
    bg_thresh: float
    max_dets: int

    def to_dict(self) -> dict:
        return {"ap": self.ap, "pos_thresh": self.pos_thresh, "bg_thresh": self.bg_thresh,
                "max_dets": self.max_dets, "units": "AP points (0-100), as TIDE prints them",
                "dap": dict(self.dap), "counts": dict(self.counts)}

    def table(self) -> str:
        """The two rows TIDE prints (dAP per type) plus the error counts."""
        names = list(ERROR_TYPES) + list(SPECIAL_TYPES)
        head = " ".join(f"{n:>8s}" for n in names)
        dap = " ".join(f"{self.dap[n]:8.2f}" for n in names)
        counts = " ".join(f"{self.counts[n]:8d}" for n in ERROR_TYPES)
        return "\n".join([
            f" TIDE errors: AP{round(self.pos_thresh * 100)} = {self.ap:.2f} (AP points; foreground IoU "
            f"{self.pos_thresh:g}, background IoU {self.bg_thresh:g}, {self.max_dets} detections per image)",
            f" {'type':6s} {head}", f" {'dAP':6s} {dap}", f" {'count':6s} {counts}"])


def tide(gt: GroundTruth, dets: DetectionArrays, pos_thresh: float = 0.5, bg_thresh: float = 0.1,
         max_dets: int = 100) -> tuple[TideMatching, TideBreakdown]:
    """Match as TIDE does and compute its breakdown."""
    matching = match_tide(gt, dets, pos_thresh, bg_thresh, max_dets)
    return matching, breakdown(matching, pos_thresh, bg_thresh, max_dets)


def match_tide(gt: GroundTruth, dets: DetectionArrays, pos_thresh: float = 0.5, bg_thresh: float = 0.1,
               max_dets: int = 100) -> TideMatching:
    """TIDE's per-image matching and the error type of every unmatched detection."""
    num_cats = len(gt.category_ids)
    det_index = _top_per_image(dets.image_index, dets.score, max_dets)
    image, category = dets.image_index[det_index], dets.category_index[det_index]
    box = dets.bbox_xywh[det_index]
    regular = ~(gt.iscrowd | gt.difficult)
    reg = np.flatnonzero(regular)
    pair_det, local, pair_iou = image_pairs(image, box, gt.image_index[reg], gt.bbox_xywh[reg])
    pair_gt = reg[local]
    same = category[pair_det] == gt.category_index[pair_gt]
    tp, gt_used = _greedy(pair_det, pair_gt, pair_iou, same, image * num_cats + category,
                          gt.image_index * num_cats + gt.category_index, regular, pos_thresh)
    in_region = _in_ignore_region(gt, ~regular, image * num_cats + category, box, num_cats, pos_thresh)
    error, target = _error_types(pair_det, pair_gt, pair_iou, same, gt_used, tp, len(det_index),
                                 pos_thresh, bg_thresh)
    fix_category, usable = _fixes(error, target, gt_used, category, gt.category_index)
    return TideMatching(
        det_index=det_index, image=image, category=category, score=dets.score[det_index], tp=tp,
        ignored=~tp & in_region, in_ignore_region=in_region, error=error, fix_category=fix_category,
        gt_regular=regular, gt_used=gt_used, gt_missed=regular & ~gt_used & ~usable, gt_category=gt.category_index,
        num_pos=np.bincount(gt.category_index[regular], minlength=num_cats).astype(np.int64),
        pair_det=pair_det, pair_gt=pair_gt, pair_iou=pair_iou)


def image_pairs(det_image: np.ndarray, det_xywh: np.ndarray, gt_image: np.ndarray, gt_xywh: np.ndarray):
    """Every (detection, gt) pair of one image and its IoU (``coco_iou``, the same bits).

    Args:
        det_image: (P,) int64 image index; det_xywh: (P, 4). gt_image: (G,); gt_xywh: (G, 4).
    Returns:
        pair_det, pair_gt (Q,) int64 grouped by detection, gts in ascending index; iou (Q,).

    The detection side comes from ``np.repeat`` and the gt side from 1-D gathers of single
    columns: about 3x faster than gathering (Q, 4) rows for ``coco_iou`` (millions of pairs).
    """
    order = np.argsort(gt_image, kind="stable")
    num_images = int(max(det_image.max(initial=-1), gt_image.max(initial=-1))) + 1
    per_image = np.bincount(gt_image, minlength=num_images)
    counts = per_image[det_image]
    total = int(counts.sum())
    pair_det = np.repeat(np.arange(len(det_image)), counts)
    # position of each pair's gt in ``order``: its image's first gt, plus the rank within the det
    position = np.arange(total)
    position -= np.repeat(np.cumsum(counts) - counts - (np.cumsum(per_image) - per_image)[det_image], counts)
    pair_gt = order[position]
    # millions of pairs: a few reused buffers (page faults on fresh arrays cost more than the math)
    x, y, w, h = det_xywh.T
    gx, gy, gw, gh = gt_xywh.T
    iw, ih, a, b = (np.empty(total) for _ in range(4))
    np.minimum(np.take(w + x, pair_det, out=a), np.take(gw + gx, pair_gt, out=b), out=iw)
    iw -= np.maximum(np.take(x, pair_det, out=a), np.take(gx, pair_gt, out=b), out=a)
    np.minimum(np.take(h + y, pair_det, out=a), np.take(gh + gy, pair_gt, out=b), out=ih)
    ih -= np.maximum(np.take(y, pair_det, out=a), np.take(gy, pair_gt, out=b), out=a)
    overlap = iw > 0
    overlap &= ih > 0
    iw *= ih  # the intersection
    np.take(w * h, pair_det, out=a)
    a += np.take(gw * gh, pair_gt, out=b)
    a -= iw  # the union: det area + gt area - intersection, as coco_iou
    ih.fill(0.0)
    np.divide(iw, a, out=ih, where=overlap)
    return pair_det, pair_gt, ih


def _top_per_image(image: np.ndarray, score: np.ndarray, max_dets: int) -> np.ndarray:
    """Indices of the top ``max_dets`` detections of every image, in (image, rank) order."""
    order = np.lexsort((-score, image))  # stable: ties keep the order added
    sorted_image = image[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_image, sorted_image, side="left")
    return order[rank < max_dets]


def _greedy(pair_det, pair_gt, pair_iou, same, det_key, gt_key, regular, pos_thresh):
    """Greedy matching in score order within each (image, class).

    Sequential per (image, class), so vectorized the other way round: step k handles the k-th
    candidate (a detection with some same-class IoU >= pos_thresh) of every pair at once. Pairs
    are padded to their bucket's largest gt count (buckets 1, 2-4, 5-16, ... gts, as the COCO
    evaluator does), so one crowded image does not blow up the arrays of all the others.
    Returns tp (P,) bool and gt_used (G,) bool.
    """
    tp, gt_used = np.zeros(len(det_key), bool), np.zeros(len(gt_key), bool)
    cand, _ = _sorted_unique(pair_det[same & (pair_iou >= pos_thresh)])  # ascending = (image, rank) order
    if len(cand) == 0:
        return tp, gt_used
    reg = np.flatnonzero(regular)
    reg = reg[np.argsort(gt_key[reg], kind="stable")]  # by pair key, then gt index
    reg_keys = gt_key[reg]
    local = np.full(len(gt_key), -1, np.int64)  # a gt's number within its pair, in gt index order
    local[reg] = np.arange(len(reg)) - np.searchsorted(reg_keys, reg_keys, side="left")
    num_gts = (np.searchsorted(reg_keys, det_key[cand], side="right")
               - np.searchsorted(reg_keys, det_key[cand], side="left"))
    bucket = np.ceil(np.log2(num_gts)).astype(np.int64) // 2
    is_cand = np.zeros(len(det_key), bool)
    is_cand[cand] = True
    pairs = same & is_cand[pair_det]
    for b in np.unique(bucket):
        _greedy_bucket(cand[bucket == b], det_key, pair_det[pairs], pair_gt[pairs], pair_iou[pairs],
                       local, pos_thresh, tp, gt_used)
    return tp, gt_used


def _greedy_bucket(cand, det_key, pair_det, pair_gt, pair_iou, local, pos_thresh, tp, gt_used):
    """The step loop for the candidates ``cand`` (ascending); sets ``tp`` and ``gt_used``."""
    by_pair = np.argsort(det_key[cand], kind="stable")  # within a pair, rank order stays
    cand = cand[by_pair]
    pair_keys, pair_of, counts = np.unique(det_key[cand], return_inverse=True, return_counts=True)
    step = np.arange(len(cand)) - np.repeat(np.cumsum(counts) - counts, counts)
    row_of_det = np.full(len(det_key), -1, np.int64)
    row_of_det[cand] = np.arange(len(cand))
    sel = row_of_det[pair_det] >= 0
    rows_q, gts_q = row_of_det[pair_det[sel]], pair_gt[sel]
    width = int(local[gts_q].max()) + 1
    iou_rows = np.full((len(cand), width), -1.0)  # padding never reaches the threshold
    iou_rows[rows_q, local[gts_q]] = pair_iou[sel]
    gt_of = np.zeros((len(pair_keys), width), np.int64)
    gt_of[pair_of[rows_q], local[gts_q]] = gts_q
    taken = np.zeros((len(pair_keys), width), bool)
    order = np.lexsort((pair_of, step))  # by step: each step is one contiguous slice
    bounds = np.searchsorted(step[order], np.arange(int(step.max()) + 2))
    for k in range(len(bounds) - 1):
        rows = order[bounds[k]:bounds[k + 1]]
        pairs = pair_of[rows]
        values = np.where(taken[pairs], -1.0, iou_rows[rows])
        best = np.argmax(values, axis=1)  # the first maximum, as tidecv's argmax
        hit = values[np.arange(len(rows)), best] >= pos_thresh
        taken[pairs[hit], best[hit]] = True
        tp[cand[rows[hit]]] = True
        gt_used[gt_of[pairs[hit], best[hit]]] = True


def _in_ignore_region(gt: GroundTruth, ignore: np.ndarray, det_key, box, num_cats, pos_thresh):
    """(P,) bool: crowd IoU > pos_thresh with an ignore region of the detection's class."""
    inside = np.zeros(len(det_key), bool)
    regions = np.flatnonzero(ignore)
    if len(regions):
        di, rl = group_pairs(det_key, gt.image_index[regions] * num_cats + gt.category_index[regions])
        iou = coco_iou(box[di], gt.bbox_xywh[regions[rl]], np.ones(len(di), bool))
        inside[di[iou > pos_thresh]] = True
    return inside


def _sorted_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_index=True)`` of a sorted array, without sorting it again."""
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]])) if len(values) else values[:0]
    return values[starts], starts


def _first_max_gt(values, pair_gt, starts, seg_max, wanted):
    """For the segments ``wanted`` (bool per segment), the gt of the first pair whose value is
    the segment's max (tidecv's argmax over an image's gts); -1 elsewhere."""
    counts = np.diff(np.append(starts, len(values)))
    rows = np.repeat(wanted, counts)
    local_start = np.cumsum(np.where(wanted, counts, 0)) - np.where(wanted, counts, 0)
    sub = values[rows]
    is_max = sub == np.repeat(seg_max[wanted], counts[wanted])
    first = np.full(len(wanted), -1, np.int64)
    if len(sub):
        first_pos = np.minimum.reduceat(np.where(is_max, np.arange(len(sub)), len(sub)), local_start[wanted])
        first[wanted] = pair_gt[rows][first_pos]
    return first


def _error_types(pair_det, pair_gt, pair_iou, same, gt_used, tp, num_dets, pos_thresh, bg_thresh):
    """(P,) int8 error code and (P,) int64 target gt (Cls / Loc errors; -1 otherwise)."""
    error = np.full(num_dets, _NO_ERROR, np.int8)
    target = np.full(num_dets, -1, np.int64)
    unmatched = ~tp
    error[unmatched] = BKG  # no regular gt in the image: background; overwritten below otherwise
    if len(pair_det) == 0:
        return error, target
    dets_with_gt, starts = _sorted_unique(pair_det)
    same_iou = np.where(same, pair_iou, 0.0)
    other_iou = np.where(same, 0.0, pair_iou)
    cls_max = np.maximum.reduceat(same_iou, starts)
    other_max = np.maximum.reduceat(other_iou, starts)
    dupe_max = np.maximum.reduceat(np.where(gt_used[pair_gt], same_iou, 0.0), starts)
    all_max = np.maximum.reduceat(pair_iou, starts)
    kind = np.select(
        [(bg_thresh <= cls_max) & (cls_max <= pos_thresh), other_max >= pos_thresh, dupe_max >= pos_thresh,
         all_max <= bg_thresh], [LOC, CLS, DUPE, BKG], BOTH).astype(np.int8)
    keep = unmatched[dets_with_gt]
    goal = np.maximum(_first_max_gt(same_iou, pair_gt, starts, cls_max, keep & (kind == LOC)),
                      _first_max_gt(other_iou, pair_gt, starts, other_max, keep & (kind == CLS)))
    error[dets_with_gt[keep]] = kind[keep]
    target[dets_with_gt[keep]] = goal[keep]
    return error, target


def _fixes(error, target, gt_used, category, gt_category):
    """fix_category (P,) and usable (G,): tidecv's BestGTMatch.

    A Cls / Loc error on an unused gt marks it usable (not missed); of all such errors on one
    gt only the first in (image, rank) order, the highest score, is fixed into a true positive.
    """
    fix_category = np.full(len(error), -1, np.int64)
    usable = np.zeros(len(gt_used), bool)
    points = np.flatnonzero(((error == CLS) | (error == LOC)) & (target >= 0))
    points = points[~gt_used[target[points]]]
    usable[target[points]] = True
    _, first = np.unique(target[points], return_index=True)
    best = points[first]
    fix_category[best] = np.where(error[best] == CLS, gt_category[target[best]], category[best])
    return fix_category, usable


def breakdown(m: TideMatching, pos_thresh: float = 0.5, bg_thresh: float = 0.1, max_dets: int = 100) -> TideBreakdown:
    """dAP of every error type (tidecv's ``fix_main_errors`` and ``fix_special_errors``)."""
    position = np.arange(len(m.score))
    # tidecv's list order decides ties: the base run in (image, rank) order; a fixed run lists
    # the errors first, then the true positives.
    base_order = np.lexsort((position, -m.score))
    fix_order = np.lexsort((position, m.tp, -m.score))
    base = _tide_map(m.category, m.tp, ~m.ignored, m.num_pos, base_order)
    dap = {name: max(_fixed_map(m, code, fix_order) - base, 0.0) for name, code in _DETECTION_ERRORS}
    missed = np.bincount(m.gt_category[m.gt_missed], minlength=len(m.num_pos))
    dap["Miss"] = max(_tide_map(m.category, m.tp, ~m.ignored, m.num_pos - missed, fix_order) - base, 0.0)
    dap.update({name: value - base for name, value in _special_maps(m, position, fix_order).items()})
    counts = {name: int(np.count_nonzero(m.error == code)) for name, code in _DETECTION_ERRORS}
    counts["Miss"] = int(np.count_nonzero(m.gt_missed))
    return TideBreakdown(float(base), {k: float(v) for k, v in dap.items()}, counts, pos_thresh, bg_thresh,
                         max_dets)


_DETECTION_ERRORS = (("Cls", CLS), ("Loc", LOC), ("Both", BOTH), ("Dupe", DUPE), ("Bkg", BKG))


def _fixed_map(m: TideMatching, code: int, order: np.ndarray) -> float:
    """mAP with the errors of one type fixed: Cls / Loc into true positives (the best one per
    gt, in ``fix_category``; the others removed), Both / Dupe / Bkg removed."""
    fixed = m.error == code
    to_tp = fixed & (m.fix_category >= 0)
    return _tide_map(np.where(to_tp, m.fix_category, m.category), m.tp | to_tp,
                     np.where(fixed, to_tp, ~m.ignored), m.num_pos, order)


def _special_maps(m: TideMatching, position: np.ndarray, fix_order: np.ndarray) -> dict[str, float]:
    """FalsePos: every true positive scored 1, everything else 0 (FalsePositiveError.fix);
    FalseNeg: every unmatched gt removed from the positives."""
    perfect_order = np.lexsort((position, m.tp, -m.tp.astype(np.float64)))
    found = np.bincount(m.category[m.tp], minlength=len(m.num_pos))
    return {"FalsePos": _tide_map(m.category, m.tp, ~m.ignored, m.num_pos, perfect_order),
            "FalseNeg": _tide_map(m.category, m.tp, ~m.ignored, found, fix_order)}


def _tide_map(category, tp, keep, num_pos, order) -> float:
    """TIDE's mAP of the detections ``keep`` (in ``order``, ties as listed) against ``num_pos``.

    Per class: precision / recall over the detections sorted by score, made monotone, read at
    the 101 recall points with searchsorted(left), averaged, times 100; 0 without positives.
    Classes with neither positives nor detections are left out of the mean.
    """
    num_cats = len(num_pos)
    order = order[keep[order]]
    cats = category[order]
    if num_cats < 2 ** 15:  # numpy's stable sort of 16-bit integers is a radix sort: 5x faster
        cats = cats.astype(np.int16)
    by_cat = np.argsort(cats, kind="stable")
    order, cats = order[by_cat], cats[by_cat]
    bounds = np.searchsorted(cats, np.arange(num_cats + 1))
    aps = []
    for k in range(num_cats):
        seg = order[bounds[k]:bounds[k + 1]]
        if num_pos[k] == 0:
            if len(seg):
                aps.append(0.0)
            continue
        aps.append(_tide_ap(tp[seg], int(num_pos[k])))
    return sum(aps) / len(aps) if aps else 0.0


def _tide_ap(tp: np.ndarray, num_pos: int) -> float:
    """tidecv's APDataObject.get_ap for detections already in score order."""
    if len(tp) == 0:
        return 0.0
    num_true = np.cumsum(tp)
    precision = num_true / np.arange(1, len(tp) + 1)
    recall = num_true / num_pos
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, RECALL_POINTS, side="left")
    y = np.where(index < len(tp), precision[np.minimum(index, len(tp) - 1)], 0.0)
    return sum(y.tolist()) / len(y) * 100
