"""CocoEvaluator against pycocotools (the real peer) on seeded random cases, plus bad input."""
from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch

from anchordet.evaluation import CocoEvaluator, detections_to_coco_results
from anchordet.evaluation.coco import STAT_KEYS

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def random_case(seed: int, num_images: int = 6, num_cats: int = 4):
    """Random gt (crowds, empty images, a category without gt, boxes of all sizes) and results
    (jittered copies of gts, random boxes, >100 dets in one image, quantized scores -> ties)."""
    rng = np.random.default_rng(seed)
    images = [{"id": int(i), "width": 300, "height": 300} for i in rng.choice(1000, num_images, replace=False)]
    cats = [{"id": int(c), "name": f"cat{c}"} for c in rng.choice(90, num_cats, replace=False) + 1]
    anns, gt_boxes = [], []
    for im in images[1:]:  # images[0] stays empty
        for _ in range(rng.integers(0, 6)):
            cat = cats[rng.integers(0, num_cats - 1)]["id"]  # the last category never has gt
            size = rng.choice([12.0, 40.0, 130.0]) * rng.uniform(0.6, 1.5, 2)
            x, y = rng.uniform(0, 200, 2)
            box = [float(x), float(y), float(size[0]), float(size[1])]
            crowd = int(rng.random() < 0.15)
            # the area field may differ from w*h (COCO uses the mask area): pycocotools uses it
            area = box[2] * box[3] * float(rng.choice([1.0, 0.7]))
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": cat, "bbox": box,
                         "area": area, "iscrowd": crowd})
            gt_boxes.append((im["id"], cat, box))
    if seed % 5 == 2:  # a crowded pair: 40 gts of one category in one image (a larger bucket)
        for j in range(40):
            box = [float(10 + 7 * (j % 8) * 4), float(10 + 30 * (j // 8)), 20.0, 20.0]
            anns.append({"id": len(anns) + 1, "image_id": images[-1]["id"], "category_id": cats[1]["id"],
                         "bbox": box, "area": 400.0, "iscrowd": int(j % 13 == 0)})
            gt_boxes.append((images[-1]["id"], cats[1]["id"], box))
    results = []
    for img_id, cat, box in gt_boxes:
        for _ in range(rng.integers(0, 4)):
            jit = np.array(box) + rng.normal(0, 0.12, 4) * np.array([box[2], box[3], box[2], box[3]])
            jit[2:] = np.abs(jit[2:])
            c = cat if rng.random() < 0.85 else cats[rng.integers(0, num_cats)]["id"]
            results.append({"image_id": img_id, "category_id": c, "bbox": jit.tolist(),
                            "score": float(np.round(rng.random(), 1))})
    busy = images[-1]["id"]
    for i in range(130 if seed % 3 == 0 else 20):  # > 100 detections of one category in one image
        x, y = rng.uniform(0, 250, 2)
        wh = rng.uniform(5, 120, 2)
        results.append({"image_id": busy if i % 2 == 0 else images[rng.integers(1, num_images - 1)]["id"],
                        "category_id": cats[0]["id"], "bbox": [float(x), float(y), *wh.tolist()],
                        "score": float(np.round(rng.random(), 2))})
    if seed % 4 == 1:  # integer grid: exact IoU ties between gts and IoUs exactly at thresholds
        for entry in anns + results:
            entry["bbox"] = [float(np.round(v / 2) * 2) for v in entry["bbox"]]
        if anns:  # a duplicated gt: equal IoUs, pycocotools takes the later one
            anns.append({**anns[0], "id": len(anns) + 1})
    if len(images) > 2:  # an image with gt but no detections
        results = [r for r in results if r["image_id"] != images[1]["id"]]
    return {"images": images, "annotations": anns, "categories": cats}, results


def pycocotools_stats(gt: dict, results: list[dict], max_dets: int | None = None) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        if max_dets is not None:
            ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, ev.eval


@pytest.mark.parametrize("seed", range(36))
def test_matches_pycocotools(seed):
    gt, results = random_case(seed)
    expected, expected_eval = pycocotools_stats(gt, results)
    ev = CocoEvaluator(gt)
    ev.add_results(results)
    m = ev.summarize()
    got = np.array([m.stats[k] for k in STAT_KEYS])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(m.precision, expected_eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.recall, expected_eval["recall"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.scores, expected_eval["scores"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("max_dets", [10, 50, 300, 1000])
@pytest.mark.parametrize("seed", [0, 3, 6, 9])
def test_max_dets_matches_pycocotools_with_those_max_dets(seed, max_dets):
    gt, results = random_case(seed)  # seeds divisible by 3 hold an image with 130 detections of one category
    expected, expected_eval = pycocotools_stats(gt, results, max_dets)
    ev = CocoEvaluator(gt, max_dets=max_dets)
    ev.add_results(results)
    m = ev.summarize()
    keys = [f"AR{max_dets}" if k == "AR100" else k for k in STAT_KEYS]
    got = np.array([m.stats[k] for k in keys])
    # pycocotools' summarize reads stats[0] (AP) at a hard-coded maxDets=100 (its _summarize's
    # default) and gives -1 when 100 is not in the list; every other statistic reads maxDets[2].
    # Our AP reads maxDets[2] too: the mean of pycocotools' own precision array there.
    p = expected_eval["precision"][..., 0, -1]
    assert expected[0] == -1.0 and got[0] == pytest.approx(float(np.mean(p[p > -1])), abs=1e-12)
    np.testing.assert_allclose(got[1:], expected[1:], rtol=0, atol=1e-9)
    np.testing.assert_allclose(m.precision, expected_eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.recall, expected_eval["recall"], rtol=0, atol=1e-12)
    if max_dets == 300 and seed in (0, 3):  # the cap mattered: 100 would count fewer detections
        default, _ = pycocotools_stats(gt, results)
        assert not np.allclose(default, expected)
    assert f"maxDets={max_dets:>3d}" in m.table()


def test_hand_worked_single_detection():
    """One gt, one det at IoU 72 / 100 = 0.72: a hit at thresholds .50 .55 .60 .65 .70 (5 of 10)
    with precision 1 at every recall point, a miss at .75 and above."""
    gt = {"images": [{"id": 1}], "categories": [{"id": 5, "name": "five"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 10, 10], "area": 100.0,
                           "iscrowd": 0}]}
    ev = CocoEvaluator(gt)
    ev.add(1, torch.tensor([[0.0, 0.0, 10.0, 7.2]]), torch.tensor([0.9]), torch.tensor([5]))
    m = ev.summarize()
    assert m.stats["AP"] == pytest.approx(5 / 10, abs=1e-12)
    # precision = tp / (tp + fp + eps) = 1 / (1 + 2**-52), as pycocotools
    assert m.stats["AP50"] == pytest.approx(1.0, abs=1e-12) and m.stats["AP75"] == 0.0
    assert m.stats["APs"] == pytest.approx(5 / 10, abs=1e-12)  # area 100 <= 32 ** 2: small
    assert m.stats["APm"] == -1.0 and m.stats["APl"] == -1.0  # no medium or large gt
    assert m.stats["AR1"] == pytest.approx(5 / 10, abs=1e-12)
    assert m.per_class == {"five": m.stats["AP"]}
    assert json.loads(json.dumps(m.to_dict()))["stats"]["AP75"] == 0.0
    assert "AP75" in m.table() and "five" in m.table()


def test_no_detections_at_all():
    gt, _ = random_case(3)
    m = CocoEvaluator(gt).summarize()
    assert m.stats["AP"] == 0.0 and m.stats["AR100"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_streaming_add_equals_results_and_pycocotools(seed):
    """Detections added per image as xyxy tensors, in several calls per image, give the same
    numbers as add_results of detections_to_coco_results, and as pycocotools on those results."""
    gt, results = random_case(seed)
    cat_ids = [c["id"] for c in gt["categories"]]
    stream = CocoEvaluator(gt)
    exported = []
    for img in gt["images"]:
        mine = [r for r in results if r["image_id"] == img["id"]]
        for chunk in (mine[: len(mine) // 2], mine[len(mine) // 2:]):
            xywh = torch.tensor([r["bbox"] for r in chunk], dtype=torch.float64).reshape(-1, 4)
            boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
            scores = torch.tensor([r["score"] for r in chunk], dtype=torch.float64)
            labels = torch.tensor([cat_ids.index(r["category_id"]) for r in chunk], dtype=torch.int64)
            stream.add(img["id"], boxes, scores, torch.tensor(cat_ids)[labels] if len(chunk) else labels)
            exported += detections_to_coco_results(img["id"], boxes, scores, labels, cat_ids)
    batch = CocoEvaluator(gt)
    batch.add_results(exported)
    expected, _ = pycocotools_stats(gt, exported)
    got_stream = np.array([v for v in stream.summarize().stats.values()])
    got_batch = np.array([v for v in batch.summarize().stats.values()])
    np.testing.assert_array_equal(got_stream, got_batch)
    np.testing.assert_allclose(got_batch, expected, rtol=0, atol=1e-9)


def test_detections_to_coco_results():
    out = detections_to_coco_results(7, torch.tensor([[1.0, 2.0, 4.0, 8.0]]), torch.tensor([0.5]),
                                     torch.tensor([1]), [3, 9])
    assert out == [{"image_id": 7, "category_id": 9, "bbox": [1.0, 2.0, 3.0, 6.0], "score": 0.5}]
    with pytest.raises(ValueError, match="label 2"):
        detections_to_coco_results(7, torch.zeros(1, 4), torch.ones(1), torch.tensor([2]), [3, 9])


GT_SMALL = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25,
                             "iscrowd": 0}]}
GOOD = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}


@pytest.mark.parametrize("bad,message", [
    ({**GOOD, "image_id": 99}, r"results entry 1: image_id 99 is not in the ground truth"),
    ({**GOOD, "category_id": 4}, r"results entry 1: category_id 4 is not in the ground truth"),
    ({**GOOD, "bbox": [0, 0, -1, 5]}, r"results entry 1: .*negative width or height.*-1\.0"),
    ({**GOOD, "score": float("nan")}, r"results entry 1: score is not finite: nan"),
    ({**GOOD, "bbox": [0, 0, float("inf"), 5]}, r"results entry 1: box has a non-finite value"),
    ({k: v for k, v in GOOD.items() if k != "score"}, r"results entry 1: missing key\(s\) \['score'\]"),
    ({**GOOD, "bbox": [0, 0, 5]}, r"results entry 1: bbox must be a list of 4 numbers"),
    ({**GOOD, "image_id": "1"}, r"results entry 1: 'image_id' must be an integer, got '1'"),
    ("nonsense", r"results entry 1: must be a dict"),
])
def test_bad_results_name_the_entry(bad, message):
    ev = CocoEvaluator(GT_SMALL)
    with pytest.raises(ValueError, match=message):
        ev.add_results([GOOD, bad])


def test_bad_add_names_image_and_detection():
    ev = CocoEvaluator(GT_SMALL)
    with pytest.raises(ValueError, match="image 5: image_id 5 is not in the ground truth"):
        ev.add(5, torch.zeros(1, 4), torch.ones(1), torch.tensor([1]))
    with pytest.raises(ValueError, match="image 1, detection 1: category_id 8"):
        ev.add(1, torch.zeros(2, 4), torch.ones(2), torch.tensor([1, 8]))
    with pytest.raises(ValueError, match="image 1, detection 0: box has a negative width"):
        ev.add(1, torch.tensor([[5.0, 0, 4, 5]]), torch.ones(1), torch.tensor([1]))
    with pytest.raises(ValueError, match="2 boxes, 1 scores"):
        ev.add(1, torch.zeros(2, 4), torch.ones(1), torch.tensor([1, 1]))


def test_bad_ground_truth_names_the_annotation():
    gt = copy.deepcopy(GT_SMALL)
    gt["annotations"].append({"id": 2, "image_id": 3, "category_id": 1, "bbox": [0, 0, 1, 1]})
    with pytest.raises(ValueError, match="ground truth annotation id 2: image_id 3 is not in 'images'"):
        CocoEvaluator(gt)
    gt["annotations"][1] = {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1]}
    with pytest.raises(ValueError, match=r"ground truth annotation id 2, image_id 1: bbox has a negative width or height: \[0, 0, -1, 1\]"):
        CocoEvaluator(gt)


def test_ground_truth_from_file_and_malformed_json(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(GT_SMALL))
    assert CocoEvaluator(path).gt.category_names == ["a"]
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match=r"gt\.json: malformed JSON"):
        CocoEvaluator(str(path))
