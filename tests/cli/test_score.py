"""``anchordet score``: JSON and table output against the evaluators, plots, bad input."""
from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest

from anchordet.cli.main import main

GT = {"images": [{"id": 1}, {"id": 2}],
      "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
      "annotations": [
          {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
          {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 40, 40], "area": 1600, "iscrowd": 0},
          {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0}]}
# cat: a perfect hit on image 1 (score .9), a miss on image 2 (score .8, IoU 0);
# dog: a hit at IoU (40*30)/(40*40) = 0.75.
DETS = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.8},
        {"image_id": 1, "category_id": 2, "bbox": [20, 20, 40, 30], "score": 0.7}]


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def files(tmp_path):
    gt, dets = tmp_path / "gt.json", tmp_path / "dets.json"
    gt.write_text(json.dumps(GT))
    dets.write_text(json.dumps(DETS))
    return gt, dets


def test_coco_json_matches_pycocotools(files):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    code, out, _ = run_cli(["score", str(files[0]), str(files[1]), "--metric", "coco", "--json"])
    assert code == 0
    got = json.loads(out)
    keys = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    assert list(got) == keys
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(files[0]))
        ev = COCOeval(coco, coco.loadRes(str(files[1])), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    np.testing.assert_allclose([got[k] for k in keys], ev.stats, rtol=0, atol=1e-9)
    assert got["APl"] == -1.0  # no gt with area > 96 ** 2: undefined, as pycocotools


@pytest.mark.parametrize("metric,cat_ap,dog_ap", [
    # cat: TP then FP over 2 gts: recall 1/2, 1/2, precision 1, 1/2.
    # 11-point: recall >= 0..0.5 (6 points) -> 1, else 0 = 6/11; area: 1/2 * 1 = 1/2. dog: 1.
    ("voc07", 6 / 11, 1.0), ("voc", 0.5, 1.0)])
def test_voc_json(files, metric, cat_ap, dog_ap):
    code, out, _ = run_cli(["score", str(files[0]), str(files[1]), "--metric", metric, "--json"])
    assert code == 0
    got = json.loads(out)
    assert got["per_class"] == pytest.approx({"cat": cat_ap, "dog": dog_ap}, abs=1e-12)
    assert got["mAP"] == pytest.approx((cat_ap + dog_ap) / 2, abs=1e-12)


def test_table_and_plots(files, tmp_path):
    code, out, _ = run_cli(["score", str(files[0]), str(files[1]), "--plots", str(tmp_path / "pr")])
    assert code == 0
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in out
    assert "dog" in out and "wrote 3 precision-recall plots" in out
    assert sorted(p.name for p in (tmp_path / "pr").iterdir()) == ["pr_000_cat.png", "pr_001_dog.png",
                                                                   "pr_overall.png"]


@pytest.mark.parametrize("which,content,message", [
    ("dets", "[{\"image_id\": 1,", r"dets\.json: malformed JSON"),
    ("gt", "{\"images\": ", r"gt\.json: malformed JSON"),
    ("dets", json.dumps({"image_id": 1}), r"dets\.json: expected a list of detections"),
    ("dets", json.dumps(DETS + [{**DETS[0], "image_id": 7}]), r"dets\.json: results entry 3: image_id 7 is not"),
    ("dets", json.dumps(DETS + [{**DETS[0], "category_id": 9}]), r"dets\.json: results entry 3: category_id 9"),
    ("dets", json.dumps([{**DETS[0], "bbox": [0, 0, -2, 1]}]), r"results entry 0: .*negative width"),
    ("dets", json.dumps([DETS[0], {**DETS[1], "score": 1e400}]), r"results entry 1: score is not finite: inf"),
    ("gt", json.dumps({**GT, "annotations": GT["annotations"] + [{"id": 40, "image_id": 2, "category_id": 5,
                                                                   "bbox": [0, 0, 1, 1]}]}),
     r"gt\.json: ground truth annotation id 40, image_id 2: category_id 5 is not in 'categories'"),
    # an annotation without an id is named by its position
    ("gt", json.dumps({**GT, "annotations": GT["annotations"] + [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1]}]}),
     r"gt\.json: ground truth annotation 3 in 'annotations' \(no 'id'\): image_id 7 is not in 'images'"),
    # the column-wise fast paths hand anything odd to the per-entry checks, which name it
    ("gt", json.dumps({**GT, "annotations": GT["annotations"][:1] + [{**GT["annotations"][1], "bbox": [0, 0, "4", 4]}]}),
     r"gt\.json: ground truth annotation id 2, image_id 1: bbox must be a list of 4 numbers \[x, y, w, h\], got \[0, 0, '4', 4\]"),
    ("gt", json.dumps({**GT, "annotations": [{**GT["annotations"][0], "area": -1}]}),
     r"ground truth annotation id 1, image_id 1: area must be a finite number >= 0, got -1"),
    ("dets", json.dumps(DETS[:2] + [{**DETS[2], "bbox": [0, 0, True, 1]}]), r"results entry 2: bbox must be a list of 4"),
    ("dets", json.dumps([DETS[0], {**DETS[1], "image_id": True}]), r"results entry 1: 'image_id' must be an integer"),
    ("dets", json.dumps([DETS[0], {k: v for k, v in DETS[1].items() if k != "score"}]),
     r"results entry 1: missing key\(s\) \['score'\]"),
    ("dets", json.dumps([DETS[0], {**DETS[1], "score": float("nan")}]), r"results entry 1: score is not finite: nan"),
])
def test_bad_input_is_one_clear_line(files, which, content, message):
    gt, dets = files
    (gt if which == "gt" else dets).write_text(content)
    code, out, err = run_cli(["score", str(gt), str(dets), "--metric", "voc"])
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("anchordet score: error: ")
    import re
    assert re.search(message, err), err


def test_missing_file(tmp_path, files):
    code, _, err = run_cli(["score", str(files[0]), str(tmp_path / "nope.json")])
    assert code == 2 and "nope.json: no such file" in err


def test_analyze(files, tmp_path):
    code, out, _ = run_cli(["score", str(files[0]), str(files[1]), "--analyze", "--analysis-dir", str(tmp_path / "an")])
    assert code == 0
    # cat: a hit and a background detection (IoU 0 on image 2, whose cat object is missed); dog: a hit
    assert "TIDE errors: AP50 = " in out and "best F1" in out
    tide = json.loads((tmp_path / "an" / "tide.json").read_text())
    assert tide["counts"] == {"Cls": 0, "Loc": 0, "Both": 0, "Dupe": 0, "Bkg": 1, "Miss": 1}
    confusion = json.loads((tmp_path / "an" / "confusion.json").read_text())
    assert confusion["row_labels"] == ["cat", "dog", "background"]
    assert (tmp_path / "an" / "confusion.png").is_file() and (tmp_path / "an" / "f1_overall.png").is_file()


def test_analyze_default_folder_and_json_output(files):
    code, out, _ = run_cli(["score", str(files[0]), str(files[1]), "--json", "--analyze", "--confusion-thresh", "0.75"])
    assert code == 0 and list(json.loads(out))[0] == "AP"  # --json still prints only the statistics
    folder = files[1].with_name("dets_analysis")
    assert json.loads((folder / "confusion.json").read_text())["score_threshold"] == 0.75


@pytest.mark.parametrize("argv,message", [
    (["--confusion-thresh", "0.5"], "--confusion-thresh needs --analyze"),
    (["--analysis-dir", "x"], "--analysis-dir needs --analyze"),
    (["--analyze", "--confusion-thresh", "nan"], "--confusion-thresh must be a finite number, got nan"),
])
def test_analysis_options_need_analyze(files, argv, message):
    code, _, err = run_cli(["score", str(files[0]), str(files[1]), *argv])
    assert code == 2 and message in err


def test_analyze_unknown_category_is_named(files):
    files[1].write_text(json.dumps(DETS + [{**DETS[0], "category_id": 9}]))
    code, out, err = run_cli(["score", str(files[0]), str(files[1]), "--analyze"])
    assert code == 2 and out == ""
    assert "dets.json: results entry 3: category_id 9 is not in the ground truth categories" in err


def crowded_files(tmp_path, objects=150):
    """One image with ``objects`` separate boxes of one class, each detected (scores falling)."""
    boxes = [[float(12 * (i % 15)), float(12 * (i // 15)), 10.0, 10.0] for i in range(objects)]
    gt = {"images": [{"id": 7}], "categories": [{"id": 1, "name": "tree"}],
          "annotations": [{"id": 100 + i, "image_id": 7, "category_id": 1, "bbox": b, "area": 100.0, "iscrowd": 0}
                          for i, b in enumerate(boxes)]}
    dets = [{"image_id": 7, "category_id": 1, "bbox": b, "score": 1.0 - i / 1000} for i, b in enumerate(boxes)]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    return tmp_path / "gt.json", tmp_path / "dets.json"


def test_max_dets_counts_more_detections_and_the_cap_is_named(tmp_path):
    gt, dets = crowded_files(tmp_path)
    code, out, err = run_cli(["score", str(gt), str(dets), "--json"])
    assert code == 0 and json.loads(out)["AR100"] == pytest.approx(100 / 150)
    assert "image id 7: 150" in err and "--max-dets 100" in err  # not silent
    code, out, err = run_cli(["score", str(gt), str(dets), "--json", "--max-dets", "300"])
    assert code == 0 and json.loads(out)["AR300"] == 1.0 and json.loads(out)["AP"] == 1.0
    assert "warning" not in err
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["score", str(gt), str(dets), "--max-dets", "5"])
    assert exit_info.value.code == 2


def test_precision_recall_f1_at_the_iou_and_threshold_given(files, tmp_path):
    # at IoU 0.8 the dog detection (IoU 0.75) is a false positive: TP 1 (cat .9), FP 2, FN 2
    code, out, _ = run_cli(["score", str(files[0]), str(files[1]), "--iou", "0.8", "--score-thresh", "0.5",
                            "--prf-json", str(tmp_path / "prf.json")])
    assert code == 0
    assert "overall: precision 0.333  recall 0.333  F1 0.333" in out
    written = json.loads((tmp_path / "prf.json").read_text())
    assert written["iou"] == 0.8 and written["score_threshold"] == 0.5
    assert [(r["image_id"], r["tp"], r["fp"], r["fn"]) for r in written["per_image"]] == [(1, 1, 1, 1), (2, 0, 1, 1)]
    # at the default IoU 0.5 the dog hits; the best-F1 threshold is 0.7: TP 2, FP 1 (the .8 miss), FN 1
    code, out, _ = run_cli(["score", str(files[0]), str(files[1])])
    assert "score >= 0.7 (best-F1)" in out and "overall: precision 0.667  recall 0.667  F1 0.667" in out
    for bad in (["--iou", "0"], ["--iou", "nan"], ["--score-thresh", "1.5"]):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(["score", str(files[0]), str(files[1]), *bad])
        assert exit_info.value.code == 2
