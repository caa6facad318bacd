"""`anchordet data tile`: the tile grid (edges covered, the last tile flush), the min-visible
rule, empty tiles up to the ratio, tiles.json offsets against the source pixels, the CLI."""
import json

import numpy as np
import pytest
from PIL import Image

from anchordet.cli.main import main
from anchordet.data.spec import build_dataset, load_dataset_spec
from anchordet.data.tiling import crop_boxes, tile_dataset, tile_starts, tile_windows
from tests.helpers import write_coco_dataset


def test_tile_starts_hand_worked():
    assert tile_starts(100, 40, 0.25) == [0, 30, 60]  # step 30; the last one flush with the end
    assert tile_starts(100, 40, 0.2) == [0, 32, 60]  # step 32, then 60 (not 64: it would pass the edge)
    assert tile_starts(100, 50, 0.0) == [0, 50]
    assert tile_starts(40, 40, 0.2) == [0] and tile_starts(30, 40, 0.2) == [0]  # a short side: one tile


@pytest.mark.parametrize("length, size, overlap", [(517, 128, 0.2), (1000, 256, 0.5), (129, 128, 0.0), (90, 64, 0.9)])
def test_tiles_cover_every_pixel_and_stay_inside(length, size, overlap):
    covered = np.zeros(length, bool)
    starts = tile_starts(length, size, overlap)
    for start in starts:
        assert 0 <= start and start + size <= length
        covered[start:start + size] = True
    assert covered.all() and starts[-1] == length - size
    steps = np.diff(starts)[:-1]  # all but the last step: size * (1 - overlap)
    assert (steps == max(1, int(size * (1 - overlap)))).all()


def test_crop_boxes_min_visible():
    boxes = np.array([[0, 0, 10, 10], [12, 2, 18, 8], [40, 40, 50, 50], [15, 15, 25, 25]], float)
    window = (5, 0, 20, 20)  # box 0: half inside; box 1 whole; box 2 outside; box 3: 5 x 5 of 10 x 10
    kept, index = crop_boxes(boxes, window, 0.5)
    assert index.tolist() == [0, 1] and kept.tolist() == [[0, 0, 5, 10], [7, 2, 13, 8]]
    assert crop_boxes(boxes, window, 0.25)[1].tolist() == [0, 1, 3]
    assert crop_boxes(boxes, window, 0.6)[1].tolist() == [1]


@pytest.fixture
def source(tmp_path):
    return write_coco_dataset(tmp_path / "src", [(90, 120), (50, 70), (64, 64)], seed=5, names=("a", "b"),
                              crowd_every=2)


def test_tiled_dataset_matches_the_source_pixels_and_boxes(source, tmp_path):
    spec = load_dataset_spec(source)
    counts = tile_dataset(spec, tmp_path / "tiles", size=48, overlap=0.25, min_visible=0.5, empty_ratio=100)
    out = tmp_path / "tiles"
    mapping = json.loads((out / "tiles.json").read_text())
    assert mapping["size"] == 48 and mapping["min_visible"] == 0.5
    gt = json.loads((out / "annotations" / "instances_train.json").read_text())
    source_gt = json.loads((source.parent / "annotations" / "instances_train.json").read_text())
    all_windows = sum(len(tile_windows(h, w, 48, 0.25)) for h, w in [(90, 120), (50, 70), (64, 64)])
    assert counts["train"]["tiles"] == len(mapping["tiles"]["train"]) == all_windows  # ratio 100: every empty one
    for tile in mapping["tiles"]["train"]:
        pixels = np.asarray(Image.open(out / "images" / "train" / tile["file_name"]))
        original = np.asarray(Image.open(tile["source"]))
        x, y, w, h = tile["x"], tile["y"], tile["width"], tile["height"]
        assert np.array_equal(pixels, original[y:y + h, x:x + w])  # the tile is the source's pixels at its offset
        expected = []
        for ann in (a for a in source_gt["annotations"] if a["image_id"] == tile["source_image_id"]):
            bx, by, bw, bh = ann["bbox"]
            cx1, cy1, cx2, cy2 = max(bx, x), max(by, y), min(bx + bw, x + w), min(by + bh, y + h)
            if cx2 > cx1 and cy2 > cy1 and (cx2 - cx1) * (cy2 - cy1) >= 0.5 * bw * bh:
                expected.append(([cx1 - x, cy1 - y, cx2 - cx1, cy2 - cy1], ann["iscrowd"]))
        got = [(a["bbox"], a["iscrowd"]) for a in gt["annotations"] if a["image_id"] == tile["id"]]
        assert len(got) == len(expected)
        for (box, crowd), (want, want_crowd) in zip(sorted(got), sorted(expected)):
            assert box == pytest.approx(want, abs=1e-9) and crowd == want_crowd
    assert any(a["iscrowd"] for a in gt["annotations"])  # ignore regions stay ignore regions
    dataset = build_dataset(load_dataset_spec(out / "data.yaml"), "train")  # trains as any COCO dataset
    assert len(dataset) == all_windows and dataset.class_names == ["a", "b"]


def test_empty_tiles_are_kept_up_to_the_ratio(source, tmp_path):
    spec = load_dataset_spec(source)
    every = tile_dataset(spec, tmp_path / "all", size=24, overlap=0.0, empty_ratio=1000)["train"]
    some = tile_dataset(spec, tmp_path / "some", size=24, overlap=0.0, empty_ratio=0.4)["train"]
    none = tile_dataset(spec, tmp_path / "none", size=24, overlap=0.0, empty_ratio=0)["train"]
    full = every["tiles"] - every["empty_tiles"]
    assert every["empty_tiles"] > int(0.4 * full) > 0
    assert some["empty_tiles"] == int(0.4 * full) and some["tiles"] == full + int(0.4 * full)
    assert none["empty_tiles"] == 0 and none["tiles"] == full


def test_cli(source, tmp_path, capsys):
    out = tmp_path / "tiles"
    assert main(["data", "tile", str(source), "--size", "64", "--overlap", "0.2", "--out", str(out),
                 "--min-visible", "0.7", "--empty-ratio", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "train: 3 images -> " in printed and (out / "tiles.json").is_file()
    assert json.loads((out / "tiles.json").read_text())["min_visible"] == 0.7
    assert main(["data", "tile", str(source), "--size", "64", "--out", str(out)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert main(["data", "tile", str(source), "--size", "64", "--overlap", "1.0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overlap" in err and not (tmp_path / "x").exists()
