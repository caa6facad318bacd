import json

import pytest

from anchordet.cli.main import main


def _run(capsys, *args):
    code = main(["anchors", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_report_on_digits(capsys):
    code, out, _ = _run(capsys, "--config", "retinanet_digits_fast", "--data", "digits", "--max-images", "12", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["detector"] == "retinanet" and report["anchors_per_location"] == 9
    assert report["matcher"] == {"positive": 0.5, "negative": 0.4, "low_quality": "ties"}
    assert report["images"] == 12 and report["input_sizes"] == {"128x128": 12}
    total = report["all"]["boxes"]
    assert total == sum(s["boxes"] for s in report["by_size"].values())
    assert total == sum(s["boxes"] for s in report["by_class"].values())
    assert total == sum(report["best_iou_histogram"]["counts"])
    assert list(report["by_class"]) == [str(d) for d in range(10)]


def test_text_report_suggestion_and_plots(capsys, tmp_path):
    code, out, _ = _run(capsys, "--config", "retinanet_digits_fast", "--max-images", "6", "--suggest", "--search-images", "6",
                        "--plots", str(tmp_path), "--set", "model.anchor_base_sizes=[64, 128, 256, 512, 1024]")
    assert code == 0
    assert "IoU>=pos" in out and "by class:" in out and "boxes no anchor can learn" in out
    # digits are 10..56 px: anchors from 64 px fit badly, the search proposes smaller ones
    line = next(l for l in out.splitlines() if l.startswith("apply with:"))
    base = json.loads(line.split("model.anchor_base_sizes=")[1].split("'")[0])
    assert base[0] < 64
    assert (tmp_path / "best_iou.png").is_file() and (tmp_path / "box_shapes.png").is_file()


def test_bad_arguments_exit_2(capsys):
    code, _, err = _run(capsys, "--config", "retinanet_digits_fast", "--max-images", "0")
    assert code == 2 and "--max-images" in err
    code, _, err = _run(capsys, "--config", "retinanet_digits_fast", "--data", "missing.yaml")
    assert code == 2 and "missing.yaml" in err


def test_uncovered_boxes_are_listed_with_image_ids(capsys):
    # anchors of 512 px and up on 128 px scenes: no digit reaches IoU 0.5; the low-quality rule
    # gives a tie-best anchor to the gt it overlaps most, so digits sharing their best anchor
    # with a larger digit get no positive at all
    code, out, _ = _run(capsys, "--config", "retinanet_digits_fast", "--max-images", "3", "--json",
                        "--set", "model.anchor_base_sizes=[512, 1024, 2048, 4096, 8192]")
    assert code == 0
    report = json.loads(out)
    assert report["all"]["confident"] == 0.0
    assert report["all"]["low_quality_only"] == report["all"]["covered"]
    uncovered = report["uncovered"]
    assert len(uncovered) == round((1 - report["all"]["covered"]) * report["all"]["boxes"]) > 0
    assert {u["image_id"] for u in uncovered} <= {0, 1, 2}
    assert [u["best_iou"] for u in uncovered] == sorted(u["best_iou"] for u in uncovered)
