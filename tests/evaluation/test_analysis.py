"""Threshold curves and the confusion matrix on hand-built cases; the written files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from anchordet.evaluation.analysis import analyze, score_grid
from anchordet.evaluation.analysis_plots import analyze_files
from anchordet.evaluation.results import DetectionStore, GroundTruth

CATS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def _case(anns, dets):
    gt = {"images": [{"id": 1}, {"id": 2}], "categories": CATS,
          "annotations": [{"id": i + 1, "image_id": im, "category_id": c, "bbox": list(b), "iscrowd": int(crowd)}
                          for i, (im, c, b, crowd) in enumerate(anns)]}
    results = [{"image_id": im, "category_id": c, "bbox": list(b), "score": s} for im, c, b, s in dets]
    return gt, results


def _analyze(gt, results, threshold=None):
    ground_truth = GroundTruth.load(gt)
    store = DetectionStore(ground_truth)
    store.add_results(results)
    return analyze(ground_truth, store.arrays(), threshold)


def test_precision_recall_f1_at_each_threshold():
    # class a: 2 objects; detections TP 0.9, FP 0.6, TP 0.3. Class b: 1 object, never found.
    gt, results = _case([(1, 1, (0, 0, 10, 10), 0), (2, 1, (0, 0, 10, 10), 0), (2, 2, (50, 50, 10, 10), 0)],
                        [(1, 1, (0, 0, 10, 10), 0.9), (1, 1, (30, 30, 10, 10), 0.6), (2, 1, (0, 0, 10, 10), 0.3)])
    c = _analyze(gt, results).curves
    t = {round(v, 2): i for i, v in enumerate(c.thresholds)}
    # class a at 0.30 (all 3 kept): P 2/3, R 1, F1 0.8; at 0.31..0.60: P 1/2, R 1/2; at 0.61..0.90:
    # P 1, R 1/2, F1 2/3; above 0.90 nothing is kept: P 1, R 0, F1 0.
    for thr, (p, r, f) in {0.3: (2 / 3, 1, 0.8), 0.31: (0.5, 0.5, 0.5), 0.6: (0.5, 0.5, 0.5), 0.61: (1, 0.5, 2 / 3),
                           0.9: (1, 0.5, 2 / 3), 0.91: (1, 0, 0)}.items():
        assert (c.precision[0, t[thr]], c.recall[0, t[thr]], c.f1[0, t[thr]]) == pytest.approx((p, r, f))
    # overall: the same detections against 3 objects: at 0.30 P 2/3, R 2/3 -> F1 2/3 (the best).
    assert (c.overall_precision[t[0.3]], c.overall_recall[t[0.3]]) == pytest.approx((2 / 3, 2 / 3))
    assert c.best() == pytest.approx({"threshold": 0.3, "f1": 2 / 3, "precision": 2 / 3, "recall": 2 / 3})
    assert c.recall[1].max() == 0 and c.best(1)["f1"] == 0


def test_confusion_matrix_counts():
    crowd_b = (2, 2, (200, 200, 50, 50), 1)
    gt, results = _case(
        [(1, 1, (0, 0, 10, 10), 0), (1, 2, (20, 0, 10, 10), 0), (2, 1, (50, 50, 10, 10), 0), crowd_b],
        [(1, 1, (0, 0, 10, 10), 0.9),       # a on a: diagonal
         (1, 1, (20, 0, 10, 10), 0.8),      # a on the b object: row b, column a
         (1, 2, (100, 100, 5, 5), 0.7),     # b on nothing: background row, column b
         (2, 2, (210, 210, 10, 10), 0.95),  # b inside a b crowd region: not counted
         (2, 1, (50, 50, 10, 10), 0.2)])    # below the threshold: the a object of image 2 is missed
    m = _analyze(gt, results, threshold=0.5).confusion
    assert m.score_threshold == 0.5
    assert m.matrix.tolist() == [[1, 0, 1],   # a: 1 right, 1 missed
                                 [1, 0, 0],   # b: taken for an a
                                 [0, 1, 0]]   # background: one b
    d = m.to_dict()
    assert d["row_labels"] == ["a", "b", "background"] and d["column_labels"] == ["a", "b", "missed"]


def test_confusion_pairs_one_to_one_by_iou():
    """Two detections on one object: the higher-IoU one pairs with it, the other is background."""
    gt, results = _case([(1, 1, (0, 0, 10, 10), 0)],
                        [(1, 2, (0, 0, 10, 8), 0.9), (1, 1, (0, 0, 10, 10), 0.5)])
    m = _analyze(gt, results, threshold=0.0).confusion
    assert m.matrix.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]


def test_default_confusion_threshold_is_best_f1_and_files(tmp_path):
    gt, results = _case([(1, 1, (0, 0, 10, 10), 0), (2, 2, (0, 0, 10, 10), 0)],
                        [(1, 1, (0, 0, 10, 10), 0.8), (1, 1, (40, 40, 10, 10), 0.4), (2, 2, (0, 0, 10, 10), 0.7)])
    analysis, paths = analyze_files(gt, results, tmp_path / "out")
    assert analysis.confusion.score_threshold == pytest.approx(0.7)  # highest threshold of F1 1.0
    assert sorted(p.name for p in paths) == ["confusion.json", "confusion.png", "f1.json", "f1_overall.png",
                                             "prf_per_class.png", "tide.json"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)  # no temp files
    tide_json = json.loads((tmp_path / "out" / "tide.json").read_text())
    # the background detection scores below class a's true positive: it costs no AP
    assert tide_json["counts"]["Bkg"] == 1 and tide_json["dap"]["Bkg"] == 0 and tide_json["ap"] == 100
    f1 = json.loads((tmp_path / "out" / "f1.json").read_text())
    assert f1["overall"]["best"]["f1"] == pytest.approx(1.0) and len(f1["thresholds"]) == 101
    assert "best F1 1.000 at score >= 0.70" in analysis.table() and "Bkg" in analysis.table()


def test_unknown_ids_are_named():
    gt, results = _case([(1, 1, (0, 0, 10, 10), 0)], [(1, 1, (0, 0, 10, 10), 0.9), (1, 7, (0, 0, 1, 1), 0.5)])
    with pytest.raises(ValueError, match="results entry 1: category_id 7 is not in the ground truth categories"):
        analyze_files(gt, results, "unused")
    results[1] = {**results[1], "category_id": 1, "image_id": 9}
    with pytest.raises(ValueError, match="results entry 1: image_id 9 is not in the ground truth images"):
        analyze_files(gt, results, "unused")


def test_score_grid():
    assert score_grid(np.array([0.2, 1.0]))[[0, 7, 100]].tolist() == [0.0, 0.07, 1.0]  # exact two decimals
    assert score_grid(np.array([-3.0, 5.0]))[[0, -1]].tolist() == [-3.0, 5.0]
