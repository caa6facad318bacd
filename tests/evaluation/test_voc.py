"""VocEvaluator: hand-worked AP for both variants, and a plain devkit-style loop reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from anchordet.evaluation import VocEvaluator


def make_gt(boxes_xywh, cats=(1,), difficult=None, image_ids=None, categories=(1, 2, 3)):
    """One annotation per box; image 1 unless image_ids is given."""
    n = len(boxes_xywh)
    image_ids = image_ids or [1] * n
    difficult = difficult or [0] * n
    cats = list(cats) * n if len(cats) == 1 else list(cats)
    anns = [{"id": i + 1, "image_id": image_ids[i], "category_id": cats[i], "bbox": list(map(float, b)),
             "iscrowd": 0, "difficult": difficult[i]} for i, b in enumerate(boxes_xywh)]
    images = [{"id": i} for i in sorted(set(image_ids) | {1})]
    return {"images": images, "annotations": anns,
            "categories": [{"id": c, "name": f"c{c}"} for c in categories]}


def five_detection_case():
    """3 regular gts + 1 difficult of class 1; class 2 has none; class 3 has one, no dets.

    Detections by score: TP (g1), FP (duplicate on g1), ignored (on the difficult one), TP (g2),
    FP (nothing there): tp_cum 1,1,2,2; fp_cum 0,1,1,2; recall 1/3,1/3,2/3,2/3 (3 positives);
    precision 1, 1/2, 2/3, 1/2.
    """
    gt = make_gt([[0, 0, 10, 10], [50, 50, 10, 10], [100, 100, 10, 10], [200, 200, 10, 10], [0, 0, 5, 5]],
                 cats=[1, 1, 1, 1, 3], difficult=[0, 0, 0, 1, 0])
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [200, 200, 210, 210], [50, 50, 60, 60],
                          [300, 300, 310, 310]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    return gt, boxes, scores, torch.ones(5, dtype=torch.int64)


def test_hand_worked_11_point():
    gt, boxes, scores, cats = five_detection_case()
    ev = VocEvaluator(gt, use_07_metric=True)
    ev.add(1, boxes, scores, cats)
    m = ev.summarize()
    # recall >= 0, .1, .2, .3 -> max precision 1; >= .4, .5, .6 -> max(2/3, 1/2); >= .7.. -> 0
    expected_c1 = (4 * 1 + 3 * (2 / 3)) / 11
    assert m.per_class["c1"] == pytest.approx(expected_c1, abs=1e-12)
    assert m.per_class["c2"] == -1.0  # no gt: undefined, left out of the mean
    assert m.per_class["c3"] == 0.0
    assert m.mAP == pytest.approx((expected_c1 + 0.0) / 2, abs=1e-12)
    np.testing.assert_allclose(m.recall["c1"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(m.precision["c1"], [1, 1 / 2, 2 / 3, 1 / 2])


def test_hand_worked_area():
    gt, boxes, scores, cats = five_detection_case()
    ev = VocEvaluator(gt, use_07_metric=False)
    ev.add(1, boxes, scores, cats)
    m = ev.summarize()
    # envelope 1 on (0, 1/3], 2/3 on (1/3, 2/3], nothing beyond: 1/3 * 1 + 1/3 * 2/3
    assert m.per_class["c1"] == pytest.approx(1 / 3 + 1 / 3 * 2 / 3, abs=1e-12)
    assert m.to_dict() == {"mAP": m.mAP, "per_class": {"c1": m.per_class["c1"], "c2": -1.0, "c3": 0.0}}


def test_recall_exactly_three_tenths_counts_at_point_0_3():
    """10 gts, 3 found with precision 1: recall 3/10 reaches the 0.3 point (k/10, not arange's
    0.30000000000000004): 11-point AP = 4/11; area AP = 0.3."""
    gt = make_gt([[20 * i, 0, 10, 10] for i in range(10)])
    boxes = torch.tensor([[20.0 * i, 0, 20.0 * i + 10, 10] for i in range(3)])
    for use_07, expected in ((True, 4 / 11), (False, 0.3)):
        ev = VocEvaluator(gt, use_07_metric=use_07)
        ev.add(1, boxes, torch.tensor([0.9, 0.8, 0.7]), torch.ones(3, dtype=torch.int64))
        assert ev.summarize().per_class["c1"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("difficult_first,expected", [(True, -1.0), (False, 1.0)])
def test_equal_iou_takes_first_gt(difficult_first, expected):
    """Two identical gts, one difficult: the detection takes the first listed (devkit: ov > ovmax).
    On the difficult one it is ignored (no TP/FP; AP of the regular gt's class: no points -> 0)."""
    flags = [1, 0] if difficult_first else [0, 1]
    gt = make_gt([[0, 0, 10, 10], [0, 0, 10, 10]], difficult=flags)
    ev = VocEvaluator(gt, use_07_metric=False)
    ev.add(1, torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0.5]), torch.tensor([1]))
    ap = ev.summarize().per_class["c1"]
    assert ap == (0.0 if expected < 0 else 1.0)


def test_iou_threshold_is_inclusive_and_crowd_is_ignored():
    # det [0, 0, 20, 10] vs gt [0, 0, 10, 10]: IoU = 100 / 200 = 0.5 >= 0.5 -> TP
    gt = make_gt([[0, 0, 10, 10]])
    ev = VocEvaluator(gt, use_07_metric=False)
    ev.add(1, torch.tensor([[0.0, 0, 20, 10]]), torch.tensor([0.5]), torch.tensor([1]))
    assert ev.summarize().per_class["c1"] == 1.0
    ev = VocEvaluator(gt, iou_threshold=0.51, use_07_metric=False)
    ev.add(1, torch.tensor([[0.0, 0, 20, 10]]), torch.tensor([0.5]), torch.tensor([1]))
    assert ev.summarize().per_class["c1"] == 0.0
    crowd = make_gt([[0, 0, 10, 10], [100, 100, 10, 10]])
    crowd["annotations"][1]["iscrowd"] = 1
    ev = VocEvaluator(crowd, use_07_metric=False)  # the det on the crowd is neither TP nor FP
    ev.add(1, torch.tensor([[100.0, 100, 110, 110], [0, 0, 10, 10]]), torch.tensor([0.9, 0.1]),
           torch.tensor([1, 1]))
    assert ev.summarize().per_class["c1"] == 1.0


def reference_voc(gt: dict, results: list[dict], iou_threshold: float, use_07: bool) -> dict:
    """Plain loop translation of VOCevaldet.m + VOCap.m (continuous IoU, no +1)."""
    aps = {}
    for cat in gt["categories"]:
        gts = {}  # image -> list of [box xyxy, ignored, taken]
        for a in gt["annotations"]:
            if a["category_id"] == cat["id"]:
                x, y, w, h = a["bbox"]
                gts.setdefault(a["image_id"], []).append(
                    [(x, y, x + w, y + h), bool(a.get("difficult", 0) or a.get("iscrowd", 0)), False])
        npos = sum(not g[1] for lst in gts.values() for g in lst)
        dets = [r for r in results if r["category_id"] == cat["id"]]
        dets = sorted(dets, key=lambda r: -r["score"])  # Python's sort is stable
        tp, fp = [], []
        for r in dets:
            x, y, w, h = r["bbox"]
            bb = (x, y, x + w, y + h)
            ovmax, jmax = -np.inf, -1
            for j, g in enumerate(gts.get(r["image_id"], [])):
                gb = g[0]
                iw = min(bb[2], gb[2]) - max(bb[0], gb[0])
                ih = min(bb[3], gb[3]) - max(bb[1], gb[1])
                if iw > 0 and ih > 0:
                    ua = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (gb[2] - gb[0]) * (gb[3] - gb[1]) - iw * ih
                    ov = iw * ih / ua
                    if ov > ovmax:
                        ovmax, jmax = ov, j
            if ovmax >= iou_threshold:
                g = gts[r["image_id"]][jmax]
                if g[1]:
                    continue
                if not g[2]:
                    g[2] = True
                    tp.append(1), fp.append(0)
                else:
                    tp.append(0), fp.append(1)
            else:
                tp.append(0), fp.append(1)
        if npos == 0:
            aps[cat["name"]] = -1.0
            continue
        tpc, fpc = np.cumsum(tp), np.cumsum(fp)
        rec = [t / npos for t in tpc]
        prec = [t / (t + f) for t, f in zip(tpc, fpc)]
        if use_07:
            ap = 0.0
            for k in range(11):
                ps = [p for p, rc in zip(prec, rec) if rc >= k / 10]
                ap += (max(ps) if ps else 0.0) / 11
        else:
            mrec, mpre = [0.0] + rec + [1.0], [0.0] + prec + [0.0]
            for i in range(len(mpre) - 2, -1, -1):
                mpre[i] = max(mpre[i], mpre[i + 1])
            ap = sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])
        aps[cat["name"]] = ap
    return aps


def random_voc_case(seed: int):
    rng = np.random.default_rng(seed)
    cats = [{"id": c, "name": f"class{c}"} for c in (3, 7, 11)]
    images = [{"id": i} for i in range(1, 7)]
    anns = []
    for im in images[1:]:
        for _ in range(rng.integers(0, 5)):
            x, y = rng.integers(0, 100, 2)  # integer grid: exact IoU ties happen
            w, h = rng.integers(4, 40, 2)
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": int(rng.choice([3, 7])),
                         "bbox": [float(x), float(y), float(w), float(h)],
                         "difficult": int(rng.random() < 0.2), "iscrowd": int(rng.random() < 0.05)})
    results = []
    for a in anns:
        for _ in range(rng.integers(0, 4)):
            jit = np.round(np.array(a["bbox"]) + rng.normal(0, 3, 4))
            jit[2:] = np.maximum(jit[2:], 1)
            results.append({"image_id": a["image_id"], "category_id": a["category_id"] if rng.random() < 0.9 else 11,
                            "bbox": jit.tolist(), "score": float(np.round(rng.random(), 1))})
    for _ in range(10):
        results.append({"image_id": int(rng.integers(1, 7)), "category_id": int(rng.choice([3, 7, 11])),
                        "bbox": [float(v) for v in rng.integers(0, 100, 4)], "score": float(np.round(rng.random(), 1))})
    return {"images": images, "annotations": anns, "categories": cats}, results


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("use_07", [True, False])
def test_matches_plain_reference(seed, use_07):
    gt, results = random_voc_case(seed)
    expected = reference_voc(gt, results, 0.5, use_07)
    ev = VocEvaluator(gt, iou_threshold=0.5, use_07_metric=use_07)
    ev.add_results(results)
    m = ev.summarize()
    assert m.per_class.keys() == expected.keys()
    for name, ap in expected.items():
        assert m.per_class[name] == pytest.approx(ap, abs=1e-12), name
    defined = [v for v in expected.values() if v != -1.0]
    assert m.mAP == pytest.approx(np.mean(defined) if defined else -1.0, abs=1e-12)
