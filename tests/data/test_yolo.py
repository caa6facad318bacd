import numpy as np
import pytest
import torch
from PIL import Image

from anchordet.data.spec import build_dataset, load_dataset_spec
from anchordet.data.datasets import YoloDataset
from anchordet.data.yolo import label_path


def _write_yolo(root):
    """ultralytics layout: images/train/{a,b,c}.png and labels/train/{a,b}.txt (c has no label file)."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for name, (height, width) in {"a": (40, 100), "b": (50, 50), "c": (10, 10)}.items():
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(root / "images" / "train" / f"{name}.png")
    # a: a box centred at (0.5, 0.25) of size 0.2 x 0.5 of a 100 x 40 image, and a triangle polygon.
    (root / "labels" / "train" / "a.txt").write_text("1 0.5 0.25 0.2 0.5\n0 0.1 0.2 0.3 0.2 0.2 0.9\n")
    (root / "labels" / "train" / "b.txt").write_text("")


def test_reads_normalized_boxes_in_pixels(tmp_path):
    _write_yolo(tmp_path)
    ds = YoloDataset(tmp_path / "images" / "train", None, ["a", "b"])
    assert len(ds) == 3 and [s.image_id for s in ds] == [0, 1, 2]
    sample = ds[0]
    assert sample.orig_size == (40, 100)
    # cx 0.5 * 100 = 50, w 0.2 * 100 = 20 -> x 40..60; cy 0.25 * 40 = 10, h 0.5 * 40 = 20 -> y 0..20.
    # The polygon's bounding box: x 0.1..0.3 -> 10..30, y 0.2..0.9 -> 8..36.
    assert torch.allclose(sample.targets.boxes, torch.tensor([[40.0, 0.0, 60.0, 20.0], [10.0, 8.0, 30.0, 36.0]]))
    assert sample.targets.labels.tolist() == [1, 0]
    assert len(ds[1].targets) == 0 and len(ds[2].targets) == 0  # empty label file, no label file: kept
    gt = ds.coco_ground_truth()
    assert gt["images"][0] == {"id": 0, "file_name": "a.png", "width": 100, "height": 40}
    assert gt["annotations"][0]["bbox"] == pytest.approx([40.0, 0.0, 20.0, 20.0])


def test_label_path_rule(tmp_path):
    image = tmp_path / "images" / "x" / "images" / "train" / "a.jpg"
    assert label_path(image, image.parent, None) == tmp_path / "images" / "x" / "labels" / "train" / "a.txt"
    assert label_path(image, image.parent.parent, tmp_path / "lbl") == tmp_path / "lbl" / "train" / "a.txt"


def test_ultralytics_data_yaml(tmp_path):
    _write_yolo(tmp_path)
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\nnames: {0: a, 1: b}\n")
    spec = load_dataset_spec(tmp_path / "data.yaml")
    assert spec.format == "yolo" and spec.class_names == ["a", "b"]
    ds = build_dataset(spec, "val")
    assert ds[0].targets.labels.tolist() == [1, 0]


@pytest.mark.parametrize("line, message", [
    ("2 0.5 0.5 0.1 0.1", "unknown category 2"),
    ("0 0.5 0.5 0.1", "has 4 values; expected 'class cx cy w h'"),
    ("0 0.5 nan 0.1 0.1", "non-finite coordinate"),
    ("0 0.95 0.5 0.2 0.1", r"box \[0.85, 0.45, 1.05, 0.55\] \(x1, y1, x2, y2\) lies outside the normalized image "
                          r"\[0, 1\]; written as line '0 0.95 0.5 0.2 0.1'"),
    ("0.5 0.5 0.5 0.1 0.1", "class '0.5' is not an integer index"),
    ("0 0.5 0.5 0 0.1", "is degenerate"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    _write_yolo(tmp_path)
    (tmp_path / "labels" / "train" / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n" + line + "\n")
    with pytest.raises(ValueError, match=r"b.txt, image 1, line 2: .*" + message):
        YoloDataset(tmp_path / "images" / "train", None, ["a", "b"])


def test_a_label_file_that_is_not_utf8_is_named(tmp_path):
    from anchordet.data.validate import check_records
    from anchordet.data.yolo import read_yolo_records

    _write_yolo(tmp_path)
    bad = tmp_path / "labels" / "train" / "b.txt"
    bad.write_bytes(b"0 0.5 0.5 0.2 0.2\n\xff\xfe 0.1\n")
    with pytest.raises(ValueError, match=rf"{bad}, image 1: not UTF-8 text \(invalid start byte at byte 18\)"):
        YoloDataset(tmp_path / "images" / "train", None, ["a", "b"])
    _, problems = check_records(read_yolo_records(tmp_path / "images" / "train", None, ["a", "b"]))
    assert [(p.kind, p.file) for p in problems] == [("malformed", str(bad))]
