"""RecordDataset with ``skip_bad_annotations``: unreadable images are skipped too, one line
each and a count (issue 19 item 11)."""
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from anchordet.cli.main import main
from anchordet.data.datasets import CocoDataset
from anchordet.data.image_io import ImageReadError
from anchordet.errors import InputSkipped


@pytest.fixture
def coco_with_broken_images(tmp_path):
    """Four 32 x 32 images: 0 and 3 fine, 1 is text (its header fails), 2 is a truncated JPEG
    (its header reads, decoding fails)."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in (0, 2, 3):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.jpg", quality=95)
    (folder / "1.jpg").write_text("not an image")
    data = (folder / "2.jpg").read_bytes()
    (folder / "2.jpg").write_bytes(data[: len(data) // 2])
    gt = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 32, "height": 32} for i in range(4)],
          "annotations": [{"id": 100 + i, "image_id": i, "category_id": 1, "bbox": [4, 4, 20, 20], "area": 400,
                           "iscrowd": 0} for i in range(4)],
          "categories": [{"id": 1, "name": "thing"}]}
    (tmp_path / "ann.json").write_text(json.dumps(gt))
    (tmp_path / "data.yaml").write_text("format: coco\ntrain: {images: images, annotations: ann.json}\n"
                                        "val: {images: images, annotations: ann.json}\n")
    return tmp_path


def test_unreadable_images_are_skipped_with_one_warning_each_and_a_count(coco_with_broken_images):
    root = coco_with_broken_images
    with pytest.warns(InputSkipped) as caught:
        ds = CocoDataset(root / "images", root / "ann.json", skip_bad_annotations=True)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "image 1: " in messages[0] and "1.jpg: not a readable image" in messages[0]
    assert messages[1].startswith("skipped 0 bad annotation(s) and 1 unreadable")
    assert [r.image_id for r in ds.records.images] == [0, 2, 3]
    with pytest.warns(InputSkipped, match=r"image 2: .*2.jpg: cannot decode the image.*skipped so far: 1"):
        sample = ds[1]  # image 2 only fails when decoded: the next readable one takes its place
    assert sample.image_id == 3 and ds.skipped_images == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [ds[i].image_id for i in (0, 2)] == [0, 3]


def test_without_skipping_an_unreadable_image_stops_with_its_name(coco_with_broken_images):
    root = coco_with_broken_images
    ds = CocoDataset(root / "images", root / "ann.json")
    with pytest.raises(ImageReadError, match="1.jpg: not a readable image"):
        ds[1]


def test_training_prints_each_skip_as_one_line(coco_with_broken_images, tmp_path, capsys):
    root = coco_with_broken_images
    code = main(["train", "--no-progress", "-c", "retinanet_digits_fast", "--set", f"data.dataset={root / 'data.yaml'}",
                 "--set", "data.skip_bad_annotations=true", "--set", "model.num_classes=1", "--set", "data.min_size=64",
                 "--set", "data.max_size=64", "--set", "solver.batch_size=2", "--set", "solver.epochs=1",
                 "--set", "model.backbone_width=8", "--set", "model.fpn_channels=16", "--set", "model.head_channels=16",
                 "--set", "run.threads=1", "--set", "solver.warmup_iters=1", "--set", f"run.out_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 0, err
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert all(line.startswith("anchordet train: skipped") for line in skipped) and "Traceback" not in err
    # train and val read the same file here: Python shows a repeated warning once
    assert sum("1.jpg: not a readable image" in line for line in skipped) == 1
    assert sum("skipped 0 bad annotation(s) and 1 unreadable" in line for line in skipped) == 1
    assert any("2.jpg: cannot decode the image" in line for line in skipped)
