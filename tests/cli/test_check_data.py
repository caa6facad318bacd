import json

import numpy as np
import pytest
from PIL import Image

from anchordet.cli.main import main


def _image(path, height, width, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def _dataset(root, planted: bool):
    """A COCO dataset of 3 clean images; with ``planted`` one of each problem check-data finds."""
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 40, "height": 30} for i in range(3)]
    anns = [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [2, 3, 10, 12], "area": 120, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 5, 15, 20], "area": 300, "iscrowd": 1}]
    for i in range(3):
        _image(root / "images" / f"{i}.jpg", 30, 40, seed=i)
    if planted:
        images += [{"id": 3, "file_name": "missing.jpg", "width": 40, "height": 30},
                   {"id": 4, "file_name": "text.jpg", "width": 40, "height": 30},
                   {"id": 5, "file_name": "cut.jpg", "width": 64, "height": 64},
                   {"id": 6, "file_name": "small.jpg", "width": 40, "height": 30},
                   {"id": 2, "file_name": "2.jpg", "width": 40, "height": 30}]
        (root / "images" / "text.jpg").write_text("not an image")
        _image(root / "images" / "full.jpg", 64, 64)
        data = (root / "images" / "full.jpg").read_bytes()
        (root / "images" / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
        _image(root / "images" / "small.jpg", 20, 40)
        anns += [{"id": 3, "image_id": 0, "category_id": 1, "bbox": [5, 5, 0, 4]},          # degenerate
                 {"id": 4, "image_id": 0, "category_id": 1, "bbox": [30, 5, 20, 4]},         # outside: x2 = 50 > 40
                 {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, float("nan"), 2, 2]},  # non-finite
                 {"id": 6, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2]},          # unknown category
                 {"id": 7, "image_id": 42, "category_id": 1, "bbox": [1, 1, 2, 2]}]          # unknown image
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    (root / "ann.json").write_text(json.dumps(gt))
    (root / "data.yaml").write_text("format: coco\ntrain: {images: images, annotations: ann.json}\n")


def test_clean_dataset_exits_zero_with_a_summary(tmp_path, capsys):
    _dataset(tmp_path, planted=False)
    assert main(["check-data", str(tmp_path / "data.yaml")]) == 0
    out = capsys.readouterr().out
    assert "== train: 3 images, 0 problem(s)" in out
    assert "images: 3 (1 without objects)" in out
    assert "boxes: 2 (1 ignored: iscrowd / difficult)" in out and "boxes per class: a 1, b 1" in out
    # sqrt(10 * 12) = 10.95 (small), sqrt(15 * 20) = 17.3 (small).
    assert "small (<32) 2, medium 0, large (>=96) 0; min 11.0" in out and "max 17.3" in out
    assert out.strip().endswith("no problems found")
    # A COCO JSON given directly works too (images default to the JSON's folder, here --images).
    assert main(["check-data", str(tmp_path / "ann.json"), "--images", str(tmp_path / "images")]) == 0


def test_each_planted_problem_is_reported_and_exit_is_nonzero(tmp_path, capsys):
    _dataset(tmp_path, planted=True)
    assert main(["check-data", str(tmp_path / "data.yaml")]) == 1
    out = capsys.readouterr().out
    source = str((tmp_path / "ann.json").resolve())
    expected = [
        f"[unknown-image-id] {source}, image 42, annotation id 7: annotation's image_id 42 is not in 'images'",
        f"[duplicate-image-id] {source}, image 2: image id 2 is used twice (2.jpg and 2.jpg)",
        f"[missing-image] {source}, image 3: image file not found:",
        f"[degenerate-box] {source}, image 0, annotation id 3: box [5, 5, 5, 9] (x1, y1, x2, y2) is degenerate: width 0",
        f"[box-outside-image] {source}, image 0, annotation id 4: box [30, 5, 50, 9] (x1, y1, x2, y2) lies outside "
        "the image (width 40, height 30); written as bbox [30, 5, 20, 4] (x, y, w, h)",
        f"[non-finite-box] {source}, image 1, annotation id 5: box [1, nan, 3, nan] (x1, y1, x2, y2) has a non-finite "
        "coordinate; written as bbox [1, NaN, 2, 2] (x, y, w, h)",
        f"[unknown-category] {source}, image 1, annotation id 6: unknown category 99 (known: 1, 2)",
        f"[unreadable-image] {source}, image 4: ",
        f"[unreadable-image] {source}, image 5: ",
        f"[size-mismatch] {source}, image 6: annotation says height x width 30x40 but small.jpg is 20x40",
    ]
    lines = [line.strip() for line in out.splitlines()]
    for text in expected:
        assert sum(line.startswith(text) for line in lines) == 1, text
    unreadable = [line for line in lines if line.startswith("[unreadable-image]")]
    assert "text.jpg: not a readable image" in unreadable[0]
    assert "cut.jpg: cannot decode the image, truncated" in unreadable[1]
    assert "== train: 6 images, 10 problem(s)" in out and out.strip().endswith("10 problem(s) found")


def test_training_sees_the_same_first_problem(tmp_path):
    _dataset(tmp_path, planted=True)
    from anchordet.data.spec import build_dataset, load_dataset_spec

    spec = load_dataset_spec(tmp_path / "data.yaml")
    with pytest.raises(ValueError) as caught:
        build_dataset(spec, "train")
    assert "image 42, annotation id 7: annotation's image_id 42 is not in 'images'" in str(caught.value)
    assert "(6 more problems)" in str(caught.value)  # decoding problems are found by check-data only


def test_user_errors_exit_two(tmp_path, capsys):
    assert main(["check-data", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err
    assert main(["check-data", "digits"]) == 2
    _dataset(tmp_path, planted=False)
    assert main(["check-data", str(tmp_path / "data.yaml"), "--split", "val"]) == 2
    assert "no split 'val'" in capsys.readouterr().err
