import functools
import math

import pytest
import torch

from anchordet.config.inference import InferenceSettings
from anchordet.config.schema import DataConfig
from anchordet.data.transforms import (
    Compose, PhotometricDistort, RandomExpand, RandomHorizontalFlip, RandomIoUCrop, Resize, ResizeKeepRatio,
    SSDAugmentation, build_transforms, clip_and_drop, keep_ratio_size,
)
from anchordet.structures.boxes import box_iou
from anchordet.structures.targets import Targets


def _painted(height=60, width=80, boxes=((10, 5, 30, 25), (50, 30, 76, 52))):
    """Black image with box k painted 1.0 in channel k (channels 0, 1), and its targets."""
    image = torch.zeros(3, height, width)
    for channel, (x1, y1, x2, y2) in enumerate(boxes):
        image[channel, y1:y2, x1:x2] = 1.0
    targets = Targets(torch.tensor(boxes, dtype=torch.float32), torch.arange(len(boxes)),
                      torch.tensor([False, True][:len(boxes)]))
    return image, targets


def _painted_box(image, channel):
    """Bounding box (x1, y1, x2, y2 pixel edges) of the pixels of ``channel`` above 0.5."""
    ys, xs = torch.nonzero(image[channel] > 0.5, as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def _assert_aligned(image, targets, tol):
    assert len(targets) > 0
    height, width = image.shape[1:]
    assert (targets.boxes >= 0).all()
    assert (targets.boxes[:, 0::2] <= width).all() and (targets.boxes[:, 1::2] <= height).all()
    for box, label in zip(targets.boxes.tolist(), targets.labels.tolist()):
        assert _painted_box(image, label) == pytest.approx(box, abs=tol), (box, label)


@pytest.mark.parametrize("transform, tol", [
    (Resize((30, 120)), 1.0),
    (ResizeKeepRatio(90, 1000), 1.0),
    (RandomHorizontalFlip(p=1.0), 0.0),
    (RandomExpand(max_ratio=3, p=1.0), 0.0),
])
def test_geometric_transform_keeps_painted_region_under_box(transform, tol):
    torch.manual_seed(0)
    image, targets = _painted()
    out_image, out_targets = transform(image, targets)
    _assert_aligned(out_image, out_targets, tol)
    assert out_targets.ignore.tolist() == [False, True]  # flags travel with their boxes


def test_random_crop_and_ssd_pipeline_keep_boxes_aligned():
    geometric = Compose([RandomExpand(p=1.0), RandomIoUCrop(), RandomHorizontalFlip(), Resize((64, 64))])
    for seed in range(12):
        torch.manual_seed(seed)
        image, targets = _painted()
        out_image, out_targets = geometric(image, targets)
        assert out_image.shape == (3, 64, 64)
        # A crop may cut a box: the box is then clipped to the crop, like the painted pixels.
        _assert_aligned(out_image, out_targets, 1.0)
    torch.manual_seed(0)
    out_image, out_targets = SSDAugmentation(48)(*_painted())
    assert out_image.shape == (3, 48, 48) and 0 <= out_image.min() and out_image.max() <= 1
    assert ((out_targets.boxes >= 0) & (out_targets.boxes <= 48)).all() and len(out_targets) >= 1


def test_keep_ratio_size_rule():
    # 480 x 640 to shorter side 800: scale 800 / 480 = 1.667; longer side 640 * 1.667 = 1066.7 < 1333.
    assert keep_ratio_size(480, 640, 800, 1333) == (800, round(640 * 800 / 480))
    # 300 x 1000: 800 / 300 would make the long side 2667 > 1333, so the scale is 1333 / 1000.
    assert keep_ratio_size(300, 1000, 800, 1333) == (round(300 * 1.333), 1333)
    image, targets = _painted()
    out_image, out_targets = ResizeKeepRatio(120, 1000)(image, targets)
    assert out_image.shape == (3, 120, 160)  # 60 x 80 scaled by 2
    assert torch.equal(out_targets.boxes, targets.boxes * 2)
    with pytest.raises(ValueError, match="min_size <= max_size"):
        ResizeKeepRatio(800, 600)


def test_multi_scale_draws_each_size():
    torch.manual_seed(0)
    transform = ResizeKeepRatio((20, 30, 40), 1000)
    heights = {transform(*_painted())[0].shape[1] for _ in range(30)}
    assert heights == {20, 30, 40}


def test_flip_arithmetic_and_clip_and_drop():
    image = torch.zeros(3, 10, 20)
    targets = Targets(torch.tensor([[2.0, 1.0, 5.0, 4.0]]), torch.tensor([3]))
    _, flipped = RandomHorizontalFlip(p=1.0)(image, targets)
    assert flipped.boxes.tolist() == [[20 - 5.0, 1.0, 20 - 2.0, 4.0]]
    _, same = RandomHorizontalFlip(p=0.0)(image, targets)
    assert same.boxes.tolist() == targets.boxes.tolist()
    boxes = torch.tensor([[-5.0, 2.0, 8.0, 30.0], [25.0, 0.0, 30.0, 5.0], [3.0, 3.0, 3.0, 9.0]])
    _, kept = clip_and_drop(image, Targets(boxes, torch.tensor([0, 1, 2]), torch.tensor([True, False, False])))
    # First clipped to the 20 x 10 image; second entirely right of it and third of zero width: dropped.
    assert kept.boxes.tolist() == [[0.0, 2.0, 8.0, 10.0]] and kept.labels.tolist() == [0]
    assert kept.ignore.tolist() == [True]


def test_photometric_distort_changes_colours_not_boxes():
    torch.manual_seed(1)
    image, targets = _painted()
    image = image * 0.5 + torch.rand(3, 60, 80) * 0.5
    changed = 0
    for _ in range(5):
        out, out_targets = PhotometricDistort()(image, targets)
        assert torch.equal(out_targets.boxes, targets.boxes) and out.shape == image.shape
        assert 0 <= out.min() and out.max() <= 1
        changed += not torch.allclose(out, image)
    assert changed >= 3  # each step has p = 0.5; all six skipped has probability 1/64


def test_iou_crop_accepts_only_patches_meeting_the_constraint():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]])
    targets = Targets(boxes, torch.tensor([0, 1]))
    # Patch (0, 0, 20, 20): IoU with box 0 = 100 / 400 = 0.25, with box 1 = 0 (they touch at a corner).
    assert RandomIoUCrop._accept((0, 0, 20, 20), targets, 0.1).tolist() == [True, False]
    assert RandomIoUCrop._accept((0, 0, 20, 20), targets, 0.3) is None
    assert box_iou(torch.tensor([[0.0, 0, 20, 20]]), boxes)[0, 0] == pytest.approx(100 / 400)
    # Patch (5, 5, 35, 35) holds box 1's centre (30, 30) but not box 0's (5, 5 is on the edge).
    assert RandomIoUCrop._accept((5, 5, 35, 35), targets, 0.0).tolist() == [False, True]
    # An ignored box alone does not satisfy the constraint nor count as a kept object.
    ignored = Targets(boxes, torch.tensor([0, 1]), torch.tensor([False, True]))
    assert RandomIoUCrop._accept((5, 5, 35, 35), ignored, 0.0) is None
    empty = Targets()
    assert RandomIoUCrop._accept((0, 0, 5, 5), empty, 0.9).tolist() == []


def test_iou_crop_alone_keeps_exact_alignment():
    image, targets = _painted()
    cropped = 0
    for seed in range(20):
        torch.manual_seed(seed)
        out, out_targets = RandomIoUCrop()(image, targets)
        assert len(out_targets.trainable) >= 1  # a crop never drops every object
        assert out.shape[1] >= math.floor(0.3 * 60) and out.shape[2] >= math.floor(0.3 * 80)
        _assert_aligned(out, out_targets, 0.0)  # integer crop edges: exact
        cropped += out.shape[1:] != image.shape[1:]
    assert cropped >= 10  # the "keep the whole image" option has probability 1/7


def test_build_transforms_from_the_data_config():
    image, targets = _painted()
    ssd = DataConfig(train_transform="ssd", eval_transform="fixed", fixed_size=32)
    assert build_transforms(ssd, train=True)(image, targets)[0].shape == (3, 32, 32)
    assert build_transforms(ssd, train=False)(image, targets)[0].shape == (3, 32, 32)
    keep_ratio = DataConfig(eval_transform="resize", min_size=45, max_size=1000)
    assert build_transforms(keep_ratio, train=False)(image, targets)[0].shape == (3, 45, 60)
    flip = build_transforms(DataConfig(train_transform="fixed", fixed_size=32, hflip=True), train=True)
    assert [type(t) for t in flip.transforms] == [Resize, RandomHorizontalFlip]
    assert build_transforms(InferenceSettings(), train=False)(image, targets)[0] is image  # weights that do not say
    with pytest.raises(ValueError, match="not one of resize, ssd, fixed"):
        DataConfig(train_transform="mosaic")


@pytest.mark.parametrize("hflip", [True, False])
def test_ssd_augmentation_flips_only_when_data_hflip_says_so(hflip):
    """Expand, IoU crop and resize keep the left-to-right order of the two painted boxes (box 0
    lies left of box 1); only a flip reverses it. ``data.hflip=false`` with ``train_transform:
    ssd`` used to be ignored (issue 19 item 13)."""
    pipeline = build_transforms(DataConfig(train_transform="ssd", fixed_size=48, hflip=hflip), train=True)
    assert any(isinstance(t, RandomHorizontalFlip) for t in pipeline.transforms) == hflip
    reversed_order = 0
    for seed in range(40):
        torch.manual_seed(seed)
        _, targets = pipeline(*_painted())
        if len(targets) == 2:
            left = dict(zip(targets.labels.tolist(), targets.boxes[:, 0].tolist()))
            reversed_order += left[0] > left[1]
    assert (reversed_order > 0) == hflip


# ------------------------------------------------------------------ large-image augmentations (issue 25)
from anchordet.data.transforms import (  # noqa: E402
    RandomRotate90, RandomScale, RandomWindow, TorchvisionStep, _rotate_both, augment_steps, crop_targets,
)


def test_vertical_flip_moves_boxes_with_pixels():
    from torchvision.transforms import v2

    image, targets = _painted()
    out_image, out_targets = TorchvisionStep(v2.RandomVerticalFlip(1.0))(image, targets)
    _assert_aligned(out_image, out_targets, 0.0)
    assert out_targets.boxes.tolist() == [[10, 60 - 25, 30, 60 - 5], [50, 60 - 52, 76, 60 - 30]]
    assert out_targets.ignore.tolist() == [False, True]


def test_rotate90_moves_boxes_with_pixels_for_every_turn():
    """Every k in {1, 2, 3} is drawn across the seeds; the 60 x 80 image turns to 80 x 60 for odd
    k and each painted box stays exactly under its box (torchvision's rotate of BoundingBoxes)."""
    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        image, targets = _painted()
        out_image, out_targets = RandomRotate90()(image, targets)
        turned = tuple(out_image.shape[1:]) == (80, 60)
        seen.add(turned if not torch.equal(out_image, image) else None)
        _assert_aligned(out_image, out_targets, 0.0)
    assert seen == {None, True, False}  # no turn, quarter turns and the half turn all happened
    torch.manual_seed(0)
    # hand-worked quarter turn counter-clockwise of box 0 (10, 5, 30, 25) in an 80 px wide image:
    # x' = y, y' = W - x -> (5, 80 - 30, 25, 80 - 10)
    image, targets = _painted()
    out_image, out_targets = TorchvisionStep(functools.partial(_rotate_both, angle=90.0))(image, targets)
    assert out_targets.boxes[0].tolist() == [5, 50, 25, 70]


def test_scale_jitter_moves_boxes_with_pixels():
    sizes = set()
    for seed in range(6):
        torch.manual_seed(seed)
        image, targets = _painted()
        out_image, out_targets = RandomScale(0.5, 2.0)(image, targets)
        sizes.add(tuple(out_image.shape[1:]))
        factor = out_image.shape[2] / 80
        assert abs(out_image.shape[1] - 60 * factor) <= 1  # both sides by one factor (each rounded)
        _assert_aligned(out_image, out_targets, 1.0)
    assert len(sizes) == 6


def test_color_jitter_changes_colours_not_boxes():
    torch.manual_seed(0)
    image, targets = _painted()
    image = image * 0.5 + 0.25
    pipeline = Compose(augment_steps(DataConfig(hflip=False, color_jitter=0.4)))
    out_image, out_targets = pipeline(image, targets)
    assert not torch.allclose(out_image, image) and out_image.shape == image.shape
    assert torch.equal(out_targets.boxes, targets.boxes)


def test_random_window_cuts_at_full_resolution_and_keeps_boxes_aligned():
    for seed in range(10):
        torch.manual_seed(seed)
        image, targets = _painted()
        out_image, out_targets = RandomWindow(40)(image, targets)
        assert out_image.shape == (3, 40, 40)
        for box, label, ignore in zip(out_targets.boxes.tolist(), out_targets.labels.tolist(),
                                      out_targets.ignore.tolist()):
            assert _painted_box(out_image, label) == box  # clipped box = the visible painted pixels
    small = torch.zeros(3, 30, 20)
    assert RandomWindow(40)(small, Targets())[0].shape == (3, 30, 20)  # smaller sides kept whole


def test_crop_targets_min_visible_rule():
    # box 0: 10 x 10 with 5 x 10 inside the window (0.5 visible); box 1 fully inside; box 2 outside
    targets = Targets(torch.tensor([[0.0, 0, 10, 10], [6, 2, 9, 8], [30, 30, 40, 40]]), torch.tensor([0, 1, 2]))
    window = (5, 0, 25, 20)
    kept = crop_targets(targets, window, 0.5)
    assert kept.boxes.tolist() == [[0, 0, 5, 10], [1, 2, 4, 8]] and kept.labels.tolist() == [0, 1]
    assert crop_targets(targets, window, 0.6).labels.tolist() == [1]
    cut = crop_targets(targets, window, 0.6, keep_cut_as_ignore=True)
    assert cut.labels.tolist() == [0, 1] and cut.ignore.tolist() == [True, False]


def test_build_transforms_with_the_large_image_options():
    data = DataConfig(min_size=64, max_size=64, hflip=False, vflip=True, rotate90=True, scale_jitter=(0.8, 1.2),
                      color_jitter=0.2, random_window=32)
    steps = build_transforms(data, train=True).transforms
    assert [type(t).__name__ for t in steps] == ["RandomWindow", "ResizeKeepRatio", "RandomScale", "TorchvisionStep",
                                                "RandomRotate90", "TorchvisionStep"]
    assert [type(t) for t in build_transforms(data, train=False).transforms] == [ResizeKeepRatio]  # eval: none
    ssd = build_transforms(DataConfig(train_transform="ssd", fixed_size=48, vflip=True, random_window=100), True)
    names = [type(t).__name__ for t in ssd.transforms]
    assert names[0] == "RandomWindow" and names[-2:] == ["Resize", "TorchvisionStep"]


@pytest.mark.parametrize("values, message", [
    (dict(scale_jitter=(1.2, 0.8)), "scale_jitter"),
    (dict(scale_jitter=(0.5, 1.5), train_transform="fixed"), "needs train_transform resize"),
    (dict(color_jitter=1.5), "color_jitter"),
    (dict(random_window=-1), "random_window"),
    (dict(windows_per_image=4), "needs data.random_window"),
])
def test_large_image_options_are_checked(values, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**values)
