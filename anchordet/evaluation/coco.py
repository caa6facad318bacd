"""COCO bounding-box AP/AR, numerically identical to pycocotools' ``COCOeval`` (iouType bbox).

Every rule follows pycocotools/cocoeval.py with its default ``Params``:
- images and categories are those of the ground truth (sorted ids); per image and category
  only the top ``maxDets[-1] = 100`` detections by score are kept (stable sort, so ties keep
  the order in which detections were added);
- IoU as pycocotools' ``bbIou`` on ``[x, y, w, h]``; against a crowd region it is
  intersection / detection area;
- a gt is ignored for an area range if it is a crowd or its ``area`` field is outside the
  range (inclusive bounds); regular gts are preferred over ignored ones, and among equal IoUs
  the later gt wins (the ``<`` test in ``evaluateImg``); crowds may be matched many times;
- unmatched detections whose ``w * h`` is outside the area range are ignored;
- maxDets 1 and 10 reuse the matching done with 100 detections (as pycocotools does);
- precision is made monotone and read at the 101 recall thresholds with
  ``searchsorted(side='left')``; -1 marks settings without ground truth.

One deliberate difference: pycocotools stores matches as gt *ids* and treats id 0 as "no
match"; we match by index, so an annotation with id 0 counts like any other.

The greedy matching is sequential over detections, so it is vectorized the other way round:
step k processes the k-th candidate detection of every (image, category) pair at once, for
all 10 IoU thresholds and 4 area ranges together (detections with IoU < 0.5 against every gt
cannot match and skip the loop).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anchordet.evaluation.results import (DetectionArrays, DetectionStore, GroundTruth,
                                          group_pairs)

# pycocotools Params.setDetParams; linspace, not arange (arange overshoots, their comment says).
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0 ** 2, 1e5 ** 2), (0 ** 2, 32 ** 2), (32 ** 2, 96 ** 2), (96 ** 2, 1e5 ** 2))
AREA_LABELS = ("all", "small", "medium", "large")
# (name, is AP, IoU threshold or None for .5:.95, area label, maxDets): COCOeval._summarizeDets
STAT_SPECS = (
    ("AP", True, None, "all", 100), ("AP50", True, .5, "all", 100), ("AP75", True, .75, "all", 100),
    ("APs", True, None, "small", 100), ("APm", True, None, "medium", 100), ("APl", True, None, "large", 100),
    ("AR1", False, None, "all", 1), ("AR10", False, None, "all", 10), ("AR100", False, None, "all", 100),
    ("ARs", False, None, "small", 100), ("ARm", False, None, "medium", 100), ("ARl", False, None, "large", 100),
)
STAT_KEYS = tuple(spec[0] for spec in STAT_SPECS)


def stat_specs(max_dets: int = 100) -> tuple:
    """``STAT_SPECS`` for ``params.maxDets = [1, 10, max_dets]``: pycocotools reads AP and the last
    AR at ``maxDets[2]``; the key "AR100" becomes f"AR{max_dets}"."""
    return tuple((f"AR{max_dets}" if name == "AR100" else name, is_ap, iou, area, max_dets if md == 100 else md)
                 for name, is_ap, iou, area, md in STAT_SPECS)


def check_max_dets(max_dets: int) -> int:
    """At least 10: pycocotools' list [1, 10, N] must stay sorted (below 10 its summary reads -1)."""
    if isinstance(max_dets, bool) or int(max_dets) != max_dets or max_dets < 10:
        raise ValueError(f"max_dets must be an integer >= 10, got {max_dets!r}")
    return int(max_dets)


@dataclass
class CocoMetrics:
    """Result of :meth:`CocoEvaluator.summarize`.

    Attributes:
        stats: the 12 COCO statistics (``STAT_KEYS``), -1.0 where undefined.
        per_class: {category name: AP@[.5:.95], area all, 100 dets} (-1.0 without gt).
        precision: (T=10, R=101, K, A=4, M=3) float64, as pycocotools' ``eval['precision']``.
        recall: (T, K, A, M) float64, as ``eval['recall']``.
        scores: (T, R, K, A, M) float64, the score at each precision point (``eval['scores']``).
        category_ids, category_names: the K categories, in the order of axis K.
    """

    stats: dict[str, float]
    per_class: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    category_ids: list[int]
    category_names: list[str]
    iou_thresholds: np.ndarray = field(default_factory=lambda: IOU_THRESHOLDS.copy())
    recall_thresholds: np.ndarray = field(default_factory=lambda: RECALL_THRESHOLDS.copy())
    max_dets: int = 100  # pycocotools' params.maxDets = [1, 10, max_dets]

    def to_dict(self) -> dict[str, Any]:
        """``{"stats": {12 keys}, "per_class": {name: AP}}`` as plain floats (JSON-serialisable)."""
        return {"stats": {k: float(v) for k, v in self.stats.items()},
                "per_class": {k: float(v) for k, v in self.per_class.items()}}

    def table(self) -> str:
        """The 12 statistics in pycocotools' wording, then per-class AP."""
        lines = []
        for name, is_ap, iou, area, max_dets in stat_specs(self.max_dets):
            title = "Average Precision  (AP)" if is_ap else "Average Recall     (AR)"
            iou_str = "0.50:0.95" if iou is None else f"{iou:0.2f}"
            lines.append(f" {title} @[ IoU={iou_str:<9} | area={area:>6s} | maxDets={max_dets:>3d} ]"
                         f" = {self.stats[name]:0.3f}   {name}")
        if self.per_class:
            width = max(len(n) for n in self.per_class)
            lines.append("")
            lines.append(f" {'category':<{width}}  AP")
            lines += [f" {n:<{width}}  {v:0.3f}" for n, v in self.per_class.items()]
        return "\n".join(lines)


class CocoEvaluator:
    """Streaming COCO bbox evaluator: ``add`` detections per image, then ``summarize``.

    Args:
        gt: COCO ground-truth dict (as ``json.load`` gives it) or the path to its JSON file.
        max_dets: detections per image and category counted, pycocotools' ``params.maxDets =
            [1, 10, max_dets]`` (its default: 100).
    """

    def __init__(self, gt: dict | str | Path, max_dets: int = 100):
        self.max_dets = check_max_dets(max_dets)
        self.gt = GroundTruth.load(gt)
        self._store = DetectionStore(self.gt)

    def add(self, image_id: int, boxes: Any, scores: Any, category_ids: Any) -> None:
        """Add detections of one image (may be called again for the same image).

        Args:
            image_id: a ground-truth image id.
            boxes: (N, 4) xyxy, absolute pixels of the original image (tensor or ndarray).
            scores: (N,) float. category_ids: (N,) int dataset category ids.
        """
        self._store.add(image_id, boxes, scores, category_ids)

    def add_results(self, results: list[dict]) -> None:
        """Add COCO results entries ``{image_id, category_id, bbox [x, y, w, h], score}``."""
        self._store.add_results(results)

    def detections(self) -> DetectionArrays:
        """Everything added so far as flat arrays (what ``anchordet.evaluation.analysis`` reads)."""
        return self._store.arrays()

    def summarize(self) -> CocoMetrics:
        """Evaluate everything added so far (the evaluator can keep streaming afterwards)."""
        return evaluate_coco(self.gt, self._store.arrays(), self.max_dets)


def evaluate_coco(gt: GroundTruth, dets: DetectionArrays, max_dets: int = 100) -> CocoMetrics:
    """COCOeval.evaluate + accumulate + summarize on flat arrays, ``params.maxDets = [1, 10, max_dets]``."""
    num_images, num_cats = len(gt.image_ids), len(gt.category_ids)
    all_max = (MAX_DETS[0], MAX_DETS[1], check_max_dets(max_dets))
    keep, rank = _top_detections(dets, num_images, all_max[-1])
    det_bbox, det_score = dets.bbox_xywh[keep], dets.score[keep]
    det_img, det_cat = dets.image_index[keep], dets.category_index[keep]
    gt_ignore = _gt_ignored(gt)  # (G, A)
    matched, ignored, outside = _match(det_cat * num_images + det_img, det_bbox,
                                       gt.category_index * num_images + gt.image_index, gt, gt_ignore)
    num_pos = np.stack([np.bincount(gt.category_index, weights=~gt_ignore[:, a], minlength=num_cats)
                        for a in range(len(AREA_RANGES))], axis=1).astype(np.int64)  # (K, A)
    precision, recall, scores = _accumulate(det_cat, det_score, rank, matched, ignored,
                                            outside, num_pos, num_cats, all_max)
    stats = {name: _summarize(precision, recall, is_ap, iou, area, md, all_max)
             for name, is_ap, iou, area, md in stat_specs(all_max[-1])}
    per_class = {}
    for k, name in enumerate(gt.category_names):
        p = precision[:, :, k, 0, -1]
        per_class[name] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    return CocoMetrics(stats=stats, per_class=per_class, precision=precision, recall=recall,
                       scores=scores, category_ids=gt.category_ids.tolist(),
                       category_names=list(gt.category_names), max_dets=all_max[-1])


def _top_detections(dets: DetectionArrays, num_images: int, max_det: int):
    """Indices of the top ``max_det`` detections per (category, image), and their rank.

    Returns keep (D,) int64 sorted by (category, image, score descending, order added) and
    rank (D,) int64 in 0..max_det-1 within the (image, category) pair.
    """
    key = dets.category_index * num_images + dets.image_index
    order = np.lexsort((-dets.score, key))  # lexsort is stable: ties keep the order added
    sorted_key = key[order]
    first = np.searchsorted(sorted_key, sorted_key, side="left")
    rank = np.arange(len(order)) - first
    small = rank < max_det
    return order[small], rank[small]


def _gt_ignored(gt: GroundTruth) -> np.ndarray:
    """(G, A) bool: crowd, or ``area`` outside the range (cocoeval.evaluateImg)."""
    lo = np.array([r[0] for r in AREA_RANGES], np.float64)
    hi = np.array([r[1] for r in AREA_RANGES], np.float64)
    area = gt.area[:, None]
    return gt.iscrowd[:, None] | (area < lo) | (area > hi)


def coco_iou(det_xywh: np.ndarray, gt_xywh: np.ndarray, gt_crowd: np.ndarray) -> np.ndarray:
    """Element-wise IoU of (P, 4) det and gt boxes ``[x, y, w, h]``, as pycocotools' bbIou.

    The operations are those of maskApi.c (``min(x + w) - max(x)``; union ``da + ga - i`` or,
    for a crowd gt, the detection area ``da``) so the float results are bit-identical.
    """
    d, g = det_xywh, gt_xywh
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    det_area, gt_area = d[:, 2] * d[:, 3], g[:, 2] * g[:, 3]
    union = np.where(gt_crowd, det_area, det_area + gt_area - inter)
    ok = (w > 0) & (h > 0)
    return np.where(ok, inter / np.where(ok, union, 1.0), 0.0)


def _match(det_key, det_bbox, gt_key, gt: GroundTruth, gt_ignore):
    """Greedy matching of cocoeval.evaluateImg for all pairs, thresholds and area ranges.

    Args:
        det_key: (D,) pair key (category * I + image), grouped, best score first per pair.
        det_bbox: (D, 4) xywh. gt_key: (G,) pair key. gt_ignore: (G, A) bool.
    Returns:
        matched, ignored: (D, A, T) bool, as pycocotools' ``dtMatches > 0`` and ``dtIgnore``;
        outside: (D, A) bool, the detection's area is outside the range.
    """
    num_a, num_t = gt_ignore.shape[1], len(IOU_THRESHOLDS)
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)  # evaluateImg: iou = min([t, 1-1e-10])
    det_area = det_bbox[:, 2] * det_bbox[:, 3]  # loadRes: area = w * h
    lo = np.array([r[0] for r in AREA_RANGES])
    hi = np.array([r[1] for r in AREA_RANGES])
    det_outside = (det_area[:, None] < lo) | (det_area[:, None] > hi)  # (D, A)
    matched = np.zeros((len(det_key), num_a, num_t), bool)
    match_ignored = np.zeros((len(det_key), num_a, num_t), bool)

    di, gi = group_pairs(det_key, gt_key)
    iou = coco_iou(det_bbox[di], gt.bbox_xywh[gi], gt.iscrowd[gi])
    hit = iou >= thresholds.min()
    cand = np.unique(di[hit])  # detections that can match at some threshold
    # Pairs are padded to their bucket's largest gt count: bucket by gt count (1, 2-4, 5-16,
    # ...) so that one crowded image does not blow up the arrays of all the others.
    sorted_gt_keys = np.sort(gt_key)
    num_gts = (np.searchsorted(sorted_gt_keys, det_key[cand], side="right")
               - np.searchsorted(sorted_gt_keys, det_key[cand], side="left"))
    bucket = np.ceil(np.log2(num_gts)).astype(np.int64) // 2 if len(cand) else num_gts
    for b in np.unique(bucket):
        sub = cand[bucket == b]
        rows = _CandidateLayout(sub, det_key, gt_key)
        m, ig = _greedy(rows, di, gi, iou, gt.iscrowd, gt_ignore, thresholds)
        matched[sub], match_ignored[sub] = m, ig
    ignored = np.where(matched, match_ignored, det_outside[:, :, None])
    return matched, ignored, det_outside


class _CandidateLayout:
    """Row layout for the step loop: pairs sorted by number of candidates (descending), so
    that at step k the pairs still active are a prefix and their rows are contiguous."""

    def __init__(self, cand: np.ndarray, det_key: np.ndarray, gt_key: np.ndarray):
        keys = det_key[cand]  # grouped by pair (det_key is sorted)
        self.pair_keys, first, counts = np.unique(keys, return_index=True, return_counts=True)
        step = np.arange(len(cand)) - np.repeat(first, counts)  # candidate rank within pair
        pair_pos = np.empty(len(counts), np.int64)
        pair_pos[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
        self.pair_pos = pair_pos  # (Q,) position of each unique pair in the loop order
        cand_pos = np.repeat(pair_pos, counts)
        order = np.lexsort((cand_pos, step))  # by step, then pair position
        self.row_of_cand = np.empty(len(cand), np.int64)
        self.row_of_cand[order] = np.arange(len(cand))
        self.row_of_det = np.full(len(det_key), -1, np.int64)
        self.row_of_det[cand] = self.row_of_cand
        self.active = np.sort(counts)[::-1]  # active[q]: candidates of the q-th pair in loop order
        self.num_steps = int(counts.max())
        # gts of those pairs: local index within the pair and loop position
        gt_order = np.argsort(gt_key, kind="stable")
        sorted_keys = gt_key[gt_order]
        local = np.empty(len(gt_key), np.int64)
        local[gt_order] = np.arange(len(gt_key)) - np.searchsorted(sorted_keys, sorted_keys, side="left")
        self.gt_local = local
        q = np.searchsorted(self.pair_keys, gt_key)
        q = np.minimum(q, len(self.pair_keys) - 1)
        in_pairs = self.pair_keys[q] == gt_key
        self.gt_sel = np.flatnonzero(in_pairs)
        self.gt_pos = pair_pos[q[in_pairs]]
        self.max_gts = int(local[self.gt_sel].max()) + 1


def _greedy(rows: _CandidateLayout, di, gi, iou, gt_crowd, gt_ignore, thresholds):
    """The step loop. Returns matched, match_ignored: (C, A, T) bool per candidate."""
    num_q, num_g, num_a, num_t = len(rows.active), rows.max_gts, gt_ignore.shape[1], len(thresholds)
    iou_rows = np.full((len(rows.row_of_cand), num_g), -1.0)  # padding never reaches a threshold
    sel = rows.row_of_det[di] >= 0
    iou_rows[rows.row_of_det[di[sel]], rows.gt_local[gi[sel]]] = iou[sel]
    ignore = np.zeros((num_q, num_a, num_g), bool)
    crowd = np.zeros((num_q, num_g), bool)
    ignore[rows.gt_pos, :, rows.gt_local[rows.gt_sel]] = gt_ignore[rows.gt_sel]
    crowd[rows.gt_pos, rows.gt_local[rows.gt_sel]] = gt_crowd[rows.gt_sel]

    gt_taken = np.zeros((num_q, num_a, num_t, num_g), bool)
    out_matched = np.zeros((len(iou_rows), num_a, num_t), bool)
    out_ignored = np.zeros((len(iou_rows), num_a, num_t), bool)
    thr = thresholds[None, None, :, None]
    offset = 0
    for k in range(rows.num_steps):
        n = int(np.count_nonzero(rows.active > k))
        step_iou = iou_rows[offset:offset + n, None, None, :]  # (n, 1, 1, G)
        ign = ignore[:n, :, None, :]  # (n, A, 1, G)
        ok = (step_iou >= thr) & (~gt_taken[:n] | crowd[:n, None, None, :])  # (n, A, T, G)
        regular = ok & ~ign
        has_regular = regular.any(axis=-1, keepdims=True)
        chosen = np.where(has_regular, regular, ok)  # regular gts first, ignored ones otherwise
        has = chosen.any(axis=-1)  # (n, A, T)
        value = np.where(chosen, step_iou, -1.0)
        best = num_g - 1 - np.argmax(value[..., ::-1], axis=-1)  # ties: the last gt wins
        i, a, t = np.nonzero(has)
        gt_taken[i, a, t, best[i, a, t]] = True
        out_matched[offset:offset + n] = has
        out_ignored[offset:offset + n] = np.take_along_axis(ignore[:n], best, axis=2) & has
        offset += n
    return out_matched[rows.row_of_cand], out_ignored[rows.row_of_cand]


def _accumulate(det_cat, det_score, rank, matched, ignored, outside, num_pos, num_cats, all_max=MAX_DETS):
    """cocoeval.accumulate, vectorized over (A, M, T) per category.

    Returns precision (T, R, K, A, M), recall (T, K, A, M), scores (T, R, K, A, M).
    """
    num_t, num_r, num_a, num_m = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES), len(MAX_DETS)
    precision = -np.ones((num_t, num_r, num_cats, num_a, num_m))
    recall = -np.ones((num_t, num_cats, num_a, num_m))
    scores = -np.ones((num_t, num_r, num_cats, num_a, num_m))
    # accumulate concatenates images in id order, each image's dets best first, then sorts
    # by score with mergesort: equal to one stable sort by (category, -score, image, rank). The
    # detections come sorted by (category, image, rank) (``_top_detections``), so a stable sort
    # by (category, -score) gives that order (half the time of the four-key lexsort).
    order = np.lexsort((-det_score, det_cat))
    bounds = np.searchsorted(det_cat[order], np.arange(num_cats + 1), side="left")
    max_dets = np.array(all_max)[:, None]
    is_matched = matched.any(axis=(1, 2))
    for k in range(num_cats):
        if not (num_pos[k] > 0).any():
            continue
        seg = order[bounds[k]:bounds[k + 1]]
        cand = np.flatnonzero(is_matched[seg])
        p, r, s = _accumulate_category(rank[seg] < max_dets, cand, matched[seg[cand]], ignored[seg[cand]],
                                       outside[seg], det_score[seg], num_pos[k])
        valid = num_pos[k] > 0  # (A,): npig == 0 leaves -1
        precision[:, :, k, valid] = p[:, :, valid]
        recall[:, k, valid] = r[:, valid]
        scores[:, :, k, valid] = s[:, :, valid]
    return precision, recall, scores


def _accumulate_category(included, cand, matched, ignored, outside, score, num_pos):
    """One category, its n detections sorted as accumulate sorts them.

    Args:
        included: (M, n) bool, rank within the image < maxDets[m].
        cand: (C,) positions of the detections matched at some (area, threshold).
        matched, ignored: (C, A, T) bool for those. outside: (n, A) bool, area out of range.
        score: (n,). num_pos: (A,) int, npig.
    Returns:
        precision (T, R, A, M), recall (T, A, M), scores (T, R, A, M).

    Only matched positions need precision: it rises only at true positives, so the monotone
    envelope and the recall-threshold reads (the first index with tp >= need, always a true
    positive) are all at matched positions. ``fp + tp`` there is the count of non-ignored
    detections so far: for unmatched ones that is "included and inside the area range",
    corrected at matched ones by their gt's ignore flag.
    """
    (num_m, n), num_r = included.shape, len(RECALL_THRESHOLDS)
    num_a, num_t, num_c = outside.shape[1], len(IOU_THRESHOLDS), len(cand)
    if n == 0:  # gt but no detections: recall 0, precision 0 (cocoeval: nd == 0)
        return np.zeros((num_t, num_r, num_a, num_m)), np.zeros((num_t, num_a, num_m)), np.zeros((num_t, num_r, num_a, num_m))
    first = np.where(included.any(axis=1), np.argmax(included, axis=1), n)  # (M,) first read at recall 0
    need = np.stack([np.searchsorted(np.arange(c + 1, dtype=np.float64) / c, RECALL_THRESHOLDS, side="left")
                     for c in np.maximum(num_pos, 1)])  # (A, R): rc >= r  <=>  tp >= need
    shape = (num_a, num_m, num_t, num_r)
    need_b = np.broadcast_to(need[:, None, None, :], shape)
    first_b = np.broadcast_to(first[None, :, None, None], shape)
    score_first = np.where(first_b < n, score[np.minimum(first_b, n - 1)], 0.0)
    if num_c == 0:
        q = np.zeros(shape)
        ss = np.where(need_b == 0, score_first, 0.0)
        return q.transpose(2, 3, 0, 1), np.zeros((num_t, num_a, num_m)), ss.transpose(2, 3, 0, 1)
    m_c = matched.transpose(1, 2, 0)[:, None]  # (A, 1, T, C)
    keep_c = ~ignored.transpose(1, 2, 0)[:, None]
    inc_c = included[:, cand][None, :, None, :]  # (1, M, 1, C)
    in_range_c = ~outside[cand].T[:, None, None, :]  # (A, 1, 1, C)
    tp = np.cumsum(m_c & keep_c & inc_c, axis=-1)  # (A, M, T, C)
    kept_plain = np.cumsum(included[None] & ~outside.T[:, None, :], axis=-1)[:, :, None, cand]  # (A, M, 1, C)
    fix = (m_c & inc_c).astype(np.int8) * (keep_c.astype(np.int8) - in_range_c.astype(np.int8))
    kept = kept_plain + np.cumsum(fix, axis=-1, dtype=np.int64)  # == fp + tp at each position
    npig = np.maximum(num_pos, 1)[:, None, None]
    recall = tp[..., -1] / npig  # (A, M, T), rc[-1]
    pr = tp / (kept.astype(np.float64) + np.spacing(1))  # tp / (fp + tp + eps), bit for bit
    env = np.maximum.accumulate(pr[..., ::-1], axis=-1)[..., ::-1]  # monotone precision
    rows = num_a * num_m * num_t
    stride = num_c + 2  # tp <= C: row * stride + tp is sorted across rows
    row_id = np.arange(rows)[:, None]
    keys = (row_id * stride + tp.reshape(rows, num_c)).ravel()
    query = row_id * stride + np.minimum(need_b, num_c + 1).reshape(rows, num_r)
    index = np.searchsorted(keys, query.ravel(), side="left").reshape(shape) - row_id.reshape(
        num_a, num_m, num_t, 1) * num_c
    found = index < num_c
    index = np.minimum(index, num_c - 1)
    q = np.where(found, np.take_along_axis(env, index, axis=-1), 0.0)
    ss = np.where(found, score[cand][index], 0.0)
    at_zero = need_b == 0  # recall 0: the first included detection, precision max over all
    q = np.where(at_zero, np.where(first_b < n, env[..., :1], 0.0), q)
    ss = np.where(at_zero, score_first, ss)
    return q.transpose(2, 3, 0, 1), recall.transpose(2, 0, 1), ss.transpose(2, 3, 0, 1)


def _summarize(precision, recall, is_ap, iou, area, max_dets, all_max=MAX_DETS) -> float:
    """COCOeval.summarize._summarize: mean over entries > -1, or -1 when there are none."""
    a = AREA_LABELS.index(area)
    m = [i for i, value in enumerate(all_max) if value == max_dets]  # pycocotools: every index (maxDets 10: two)
    s = precision if is_ap else recall
    if iou is not None:
        s = s[np.where(iou == IOU_THRESHOLDS)[0]]
    s = s[..., a, m]
    return float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
