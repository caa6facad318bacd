"""`anchordet predict`'s options, output names, unreadable images and fixed-size models."""
import json

import pytest
import torch
from PIL import Image

import anchordet
from anchordet.cli.main import main
from anchordet.cli.predict import unique_output_names
from anchordet.data.datasets import YoloDataset
from helpers import digit_scene_files, write_tiny_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_cli")
    write_tiny_weights(root / "w.safetensors")
    return root / "w.safetensors"


def predict(weights, *args):
    return main(["predict", "--weights", str(weights), "--device", "cpu", *map(str, args)])


def test_a_corrupt_image_among_good_ones_is_skipped_named_counted_and_the_json_is_written(weights, tmp_path, capsys):
    good = digit_scene_files(tmp_path / "in", count=2)
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(good[0].read_bytes()[:200])  # a truncated PNG
    assert predict(weights, tmp_path / "in", "--out", tmp_path / "out", "--score-thresh", 0.0) == 1
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.strip()]
    assert len(skipped) == 1 and "broken.png" in skipped[0] and "Traceback" not in captured.err
    assert "skipped 1 unreadable" in captured.out
    images = json.loads((tmp_path / "out" / "images.json").read_text())
    assert [im["file_name"].rsplit("/", 1)[1] for im in images] == ["scene0.png", "scene1.png"]
    results = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert {r["image_id"] for r in results} == {0, 1}
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no temporary files left


def test_same_file_names_in_different_folders_get_different_outputs(weights, tmp_path):
    digit_scene_files(tmp_path / "a", count=1)
    digit_scene_files(tmp_path / "b", count=1, canvas_size=80)
    assert predict(weights, tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out") == 0
    sizes = sorted(Image.open(p).size for p in (tmp_path / "out").glob("*.png"))
    assert sizes == [(400, 400), (448, 448)]  # both kept, each enlarged to >= 400 px (80 x5, 64 x7)
    names = unique_output_names([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "a" / "x.png",
                                 tmp_path / "y.jpg"])
    assert len(set(names.values())) == 4 and names[tmp_path / "y.jpg"] == "y"
    assert names[tmp_path / "a" / "x.png"] == "a_x_png"  # one depth for the whole group of "x"
    assert names[tmp_path / "a" / "x.jpg"] == "a_x_jpg" and names[tmp_path / "b" / "x.jpg"] == "b_x_jpg"


def test_save_txt_writes_yolo_labels_that_read_back_as_the_json_boxes(weights, tmp_path):
    [path] = digit_scene_files(tmp_path / "images", count=1)
    assert predict(weights, path, "--out", tmp_path / "out", "--score-thresh", 0.0, "--save-txt", "--no-draw",
                   "--classes", "digit1,2,digit7", "--max-det", 5) == 0
    assert not list((tmp_path / "out").glob("*.png"))  # --no-draw
    results = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert 0 < len(results) <= 5 and {r["category_id"] for r in results} <= {101, 102, 107}
    sample = YoloDataset(tmp_path / "images", tmp_path / "out" / "labels", [f"digit{i}" for i in range(10)])[0]
    expected = torch.tensor([[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]]
                             for r in results])
    torch.testing.assert_close(sample.targets.boxes, expected, atol=1e-3, rtol=0)
    assert [int(label) + 100 for label in sample.targets.labels] == [r["category_id"] for r in results]


def test_predict_agrees_with_the_python_predictor(weights, tmp_path):
    paths = digit_scene_files(tmp_path / "images", count=2)
    assert predict(weights, tmp_path / "images", "--out", tmp_path / "out", "--score-thresh", 0.0,
                   "--nms-thresh", 0.4, "--class-agnostic-nms") == 0
    results = json.loads((tmp_path / "out" / "detections.json").read_text())
    python = anchordet.load(weights, "cpu").predict(paths, score_thresh=0.0, nms_thresh=0.4, class_agnostic_nms=True)
    assert len(results) == sum(len(p) for p in python) > 0
    expected = [coco for i, p in enumerate(python) for coco in p.to_coco(i)]
    assert [(r["image_id"], r["category_id"]) for r in results] == [(e["image_id"], e["category_id"]) for e in expected]


def test_min_size_is_refused_for_fixed_size_models(tmp_path, capsys):
    write_tiny_weights(tmp_path / "ssd.safetensors", "ssd_vgg16")
    [path] = digit_scene_files(tmp_path / "images", count=1)
    assert predict(tmp_path / "ssd.safetensors", path, "--out", tmp_path / "out", "--min-size", 300) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "fixed 64 x 64 inputs" in err


@pytest.mark.parametrize("option, value, message", [("--batch-size", 0, "--batch-size"),
                                                     ("--score-thresh", "nan", "score_thresh"),
                                                     ("--classes", "cat", "'cat' is not a class")])
def test_bad_option_values_are_one_line(weights, tmp_path, capsys, option, value, message):
    [path] = digit_scene_files(tmp_path / "images", count=1)
    assert predict(weights, path, "--out", tmp_path / "out", option, value) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "detections.json").exists()
