"""evaluation/prf.py: precision / recall / F1 at one IoU and score threshold, on a hand-worked case."""
import pytest

from anchordet.evaluation.prf import precision_recall
from anchordet.evaluation.results import DetectionStore, GroundTruth

# image 1: three objects of class A (1) and a crowd region of A; image 2: one object of B (2); image 3: none
GT = {"images": [{"id": 1}, {"id": 2}, {"id": 3}], "categories": [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}],
      "annotations": [
          {"id": 11, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0},
          {"id": 12, "image_id": 1, "category_id": 1, "bbox": [20, 0, 10, 10], "iscrowd": 0},
          {"id": 13, "image_id": 1, "category_id": 1, "bbox": [40, 0, 10, 10], "iscrowd": 0},
          {"id": 14, "image_id": 1, "category_id": 1, "bbox": [60, 0, 30, 30], "iscrowd": 1},
          {"id": 21, "image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10], "iscrowd": 0}]}
DETECTIONS = [
    {"image_id": 1, "category_id": 1, "bbox": [1, 0, 10, 10], "score": 0.9},    # IoU 90/110 with 11: TP
    {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.8},    # 11 taken: FP (a duplicate)
    {"image_id": 1, "category_id": 1, "bbox": [24, 0, 10, 10], "score": 0.7},   # IoU 60/140 = 0.43 with 12
    {"image_id": 1, "category_id": 1, "bbox": [62, 2, 10, 10], "score": 0.6},   # inside the crowd: not counted
    {"image_id": 1, "category_id": 2, "bbox": [40, 0, 10, 10], "score": 0.95},  # on 13, wrong class: FP
    {"image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.3},    # TP
    {"image_id": 3, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5},      # FP
]


def evaluate(**kwargs):
    gt = GroundTruth.load(GT)
    store = DetectionStore(gt)
    store.add_results(DETECTIONS)
    return precision_recall(gt, store.arrays(), **kwargs)


def test_best_f1_threshold_at_iou_0_4_by_hand():
    # counted in score order: .95 FP, .9 TP, .8 FP, .7 TP, .5 FP, .3 TP; 4 objects.
    # F1 = 2TP / (2TP + FP + FN) at each threshold: 0, 2/6, 2/7, 4/8, 4/9, 6/10 -> best at 0.3
    r = evaluate(iou=0.4)
    assert r.score_threshold == 0.3 and r.threshold_kind == "best-F1"
    assert r.overall == {"tp": 3, "fp": 3, "fn": 1, "num_gt": 4, "num_det": 6, "precision": 0.5,
                         "recall": 0.75, "f1": pytest.approx(0.6)}
    one, two, three = r.per_image
    assert (one["image_id"], one["tp"], one["fp"], one["fn"]) == (1, 2, 2, 1)
    assert one["precision"] == 0.5 and one["recall"] == pytest.approx(2 / 3) and one["f1"] == pytest.approx(4 / 7)
    assert (two["precision"], two["recall"], two["f1"]) == (1.0, 1.0, 1.0)
    assert (three["precision"], three["recall"], three["f1"]) == (0.0, None, 0.0)  # no objects: no recall


def test_at_iou_0_5_the_0_43_detection_is_a_false_positive():
    # .7 is now FP: F1 0, 2/6, 2/7, 2/8, 2/9, 4/10 -> best 0.4 at 0.3
    r = evaluate(iou=0.5)
    assert r.score_threshold == 0.3
    assert (r.overall["tp"], r.overall["fp"], r.overall["fn"]) == (2, 4, 2)
    assert r.overall["f1"] == pytest.approx(0.4)


def test_a_given_threshold_and_max_dets():
    r = evaluate(iou=0.4, score_threshold=0.7)
    assert r.threshold_kind == "given"
    assert (r.overall["tp"], r.overall["fp"], r.overall["fn"]) == (2, 2, 2)
    assert r.per_image[1] == {"image_id": 2, "tp": 0, "fp": 0, "fn": 1, "num_gt": 1, "num_det": 0,
                              "precision": None, "recall": 0.0, "f1": 0.0}
    capped = evaluate(iou=0.4, score_threshold=0.0, max_dets=2)  # image 1 keeps .95 (FP) and .9 (TP)
    assert (capped.overall["tp"], capped.overall["fp"], capped.overall["fn"]) == (2, 2, 2)
    assert "overall: precision 0.500  recall 0.500  F1 0.500" in r.table()
