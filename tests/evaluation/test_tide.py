"""TIDE breakdown: each error type planted once in a hand-built case (hand-worked dAP), and every
figure against the authors' ``tidecv`` package on seeded random cases (ties, crowds, > 100
detections per image included)."""
from __future__ import annotations

import numpy as np
import pytest

from anchordet.evaluation.results import DetectionStore, GroundTruth
from anchordet.evaluation.tide import ERROR_TYPES, SPECIAL_TYPES, tide

CATS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
A, B = 1, 2


def _gt(*boxes, crowd=()):
    """Ground truth of one image: (category, [x, y, w, h]) per object; ``crowd``: ignore regions."""
    anns = [{"id": i + 1, "image_id": 1, "category_id": c, "bbox": list(b), "iscrowd": 0} for i, (c, b) in enumerate(boxes)]
    anns += [{"id": 100 + i, "image_id": 1, "category_id": c, "bbox": list(b), "iscrowd": 1} for i, (c, b) in enumerate(crowd)]
    return {"images": [{"id": 1}], "categories": CATS, "annotations": anns}


def _dets(*entries):
    return [{"image_id": 1, "category_id": c, "bbox": list(b), "score": s} for c, b, s in entries]


def _run(gt, dets):
    ground_truth = GroundTruth.load(gt)
    store = DetectionStore(ground_truth)
    store.add_results(dets)
    return tide(ground_truth, store.arrays())


BOX = (0, 0, 10, 10)
FAR = (50, 50, 10, 10)
# (error type, gt, dets, the AP before, the dAP of fixing that type) -- TIDE's AP in points:
# the mean over classes of 100 * (sum of the monotone precision at the 101 recall points) / 101.
PLANTED = [
    # class b claims the class-a object: fixed, it is a's true positive (a: 0 -> 100; b: no gt,
    # no detection left -> out of the mean).
    ("Cls", _gt((A, BOX)), _dets((B, BOX, 0.9)), 0.0, 100.0),
    # IoU 4/10 = 0.4 with its own class: between 0.1 and 0.5.
    ("Loc", _gt((A, BOX)), _dets((A, (0, 0, 10, 4), 0.9)), 0.0, 100.0),
    # wrong class and IoU 0.4: a's true positive stays (100), b's detection (AP 0) goes: 50 -> 100.
    ("Both", _gt((A, BOX)), _dets((B, (0, 0, 10, 4), 0.9), (A, BOX, 0.5)), 50.0, 50.0),
    # TP, duplicate (IoU 0.9 with the used gt), TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1:
    # 51 recall points at 1 and 50 at 2/3.
    ("Dupe", _gt((A, BOX), (A, FAR)), _dets((A, BOX, 0.9), (A, (0, 0, 10, 9), 0.8), (A, FAR, 0.7)),
     (51 + 50 * 2 / 3) / 101 * 100, 100 - (51 + 50 * 2 / 3) / 101 * 100),
    # a confident detection on nothing, then the TP: precision 1/2 at every recall point.
    ("Bkg", _gt((A, BOX)), _dets((A, (100, 100, 10, 10), 0.9), (A, BOX, 0.5)), 50.0, 50.0),
    # one of two objects found: recall 1/2 (51 points at precision 1); without the missed one, 100.
    ("Miss", _gt((A, BOX), (A, FAR)), _dets((A, BOX, 0.9)), 51 / 101 * 100, 100 - 51 / 101 * 100),
]


@pytest.mark.parametrize("kind,gt,dets,ap,dap", PLANTED, ids=[p[0] for p in PLANTED])
def test_each_planted_error_is_named(kind, gt, dets, ap, dap):
    _, result = _run(gt, dets)
    assert result.counts == {k: int(k == kind) for k in ERROR_TYPES}
    assert result.ap == pytest.approx(ap, abs=1e-9)
    assert result.dap[kind] == pytest.approx(dap, abs=1e-9)
    assert all(result.dap[k] == 0 for k in ERROR_TYPES if k != kind)


def test_ignore_region_hides_a_detection_from_ap_but_not_from_errors():
    """A detection inside a crowd region of its class is no false positive (TIDE: crowd IoU > 0.5)."""
    gt = _gt((A, BOX), crowd=[(A, (100, 100, 40, 40))])
    matching, result = _run(gt, _dets((A, (110, 110, 10, 10), 0.9), (A, BOX, 0.5)))
    assert matching.ignored.tolist() == [True, False] and matching.tp.tolist() == [False, True]
    assert result.ap == pytest.approx(100.0)
    assert result.counts["Bkg"] == 1  # still classified, as tidecv does


def test_only_the_best_of_two_errors_on_one_gt_is_fixed():
    """Two localization errors on one object: fixing makes the higher-scored one a TP and removes
    the other (tidecv's BestGTMatch), so AP becomes 100, not (1 + 1/2) / 2."""
    matching, result = _run(_gt((A, BOX)), _dets((A, (0, 0, 10, 4), 0.9), (A, (0, 0, 4, 10), 0.8)))
    assert result.counts["Loc"] == 2 and result.dap["Loc"] == pytest.approx(100.0)
    assert matching.fix_category.tolist() == [0, -1]


def _random_case(seed, num_images=20, num_cats=3, crowd=0.03, ties=False, crowded_image=False, many_objects=False):
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1} for i in range(num_images)]
    cats = [{"id": c + 1, "name": f"c{c}"} for c in range(num_cats)]
    anns, dets = [], []
    for im in images:
        n = int(rng.integers(0, 6))
        boxes = np.concatenate([rng.uniform(0, 100, (n, 2)), rng.uniform(5, 60, (n, 2))], 1)
        cs = rng.integers(1, num_cats + 1, n)
        anns += [{"id": len(anns) + 1 + j, "image_id": im["id"], "category_id": int(c), "bbox": b.tolist(),
                  "iscrowd": int(rng.random() < crowd)} for j, (b, c) in enumerate(zip(boxes, cs))]
        m = int(rng.integers(0, 12))
        if n:  # jittered copies, mostly of the right class: every error type occurs
            src = rng.integers(0, n, m)
            jit = boxes[src] + rng.normal(0, 0.25, (m, 4)) * boxes[src][:, [2, 3, 2, 3]]
            jit[:, 2:] = np.abs(jit[:, 2:]) + 1
            dc = np.where(rng.random(m) < 0.7, cs[src], rng.integers(1, num_cats + 1, m))
        else:
            jit = np.concatenate([rng.uniform(0, 100, (m, 2)), rng.uniform(5, 60, (m, 2))], 1)
            dc = rng.integers(1, num_cats + 1, m)
        scores = np.round(rng.random(m), 1) if ties else rng.random(m)
        dets += [{"image_id": im["id"], "category_id": int(c), "bbox": b.tolist(), "score": float(s)}
                 for b, c, s in zip(jit, dc, scores)]
    if crowded_image:  # more than the 100 detections per image TIDE keeps
        dets += [{"image_id": 1, "category_id": int(rng.integers(1, num_cats + 1)),
                  "bbox": [float(rng.uniform(0, 80)), float(rng.uniform(0, 80)), 20.0, 20.0],
                  "score": float(rng.random())} for _ in range(130)]
    if many_objects:  # 30 objects of one class in image 2, each found twice: wide padded rows
        boxes = np.concatenate([rng.uniform(0, 300, (30, 2)), rng.uniform(10, 40, (30, 2))], 1)
        anns += [{"id": 1000 + j, "image_id": 2, "category_id": 1, "bbox": b.tolist(), "iscrowd": 0}
                 for j, b in enumerate(boxes)]
        jit = np.repeat(boxes, 2, axis=0) + rng.normal(0, 3, (60, 4))
        dets += [{"image_id": 2, "category_id": 1, "bbox": b.tolist(), "score": float(s)}
                 for b, s in zip(jit, rng.random(60))]
    return {"images": images, "categories": cats, "annotations": anns}, dets


def _tidecv(gt, dets):
    """tidecv's figures for the same case (its COCO loaders, without files)."""
    from tidecv import TIDE, Data

    truth, preds = Data("gt"), Data("dets")
    for im in gt["images"]:
        truth.add_image(im["id"], str(im["id"]))
    for c in gt["categories"]:
        truth.add_class(c["id"], c["name"])
    for a in gt["annotations"]:  # as tidecv.datasets.COCO: crowds are ignore regions of their class
        (truth.add_ignore_region if a["iscrowd"] else truth.add_ground_truth)(a["image_id"], a["category_id"], a["bbox"])
    for d in dets:
        preds.add_detection(d["image_id"], d["category_id"], d["score"], d["bbox"])
    run = TIDE().evaluate(truth, preds)
    dap = {e.short_name: v for e, v in {**run.fix_main_errors(), **run.fix_special_errors()}.items()}
    counts = {e.short_name: v for e, v in run.count_errors().items()}
    return run.ap, dap, counts


@pytest.mark.parametrize("seed,options", [
    (0, {}), (1, {"ties": True}), (2, {"crowd": 0.25}), (3, {"crowded_image": True}),
    (4, {"num_cats": 5, "num_images": 40, "ties": True, "crowd": 0.1, "crowded_image": True}),
    (5, {"many_objects": True}),
])
def test_matches_tidecv(seed, options):
    tidecv = pytest.importorskip("tidecv")  # noqa: F841  (in the test extra; skip only where it cannot install)
    gt, dets = _random_case(seed, **options)
    ap, dap, counts = _tidecv(gt, dets)
    _, ours = _run(gt, dets)
    assert ours.ap == pytest.approx(ap, abs=1e-9)
    assert {k: ours.dap[k] for k in ERROR_TYPES + SPECIAL_TYPES} == pytest.approx(dap, abs=1e-9)
    assert ours.counts == {k: counts[k] for k in ERROR_TYPES}
    assert sum(ours.counts.values()) > 10  # the case has errors of several kinds to get right
