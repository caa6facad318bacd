import math

import pytest
import torch

from anchordet.anchors.ssd import SSDDefaultBoxes, paper_box_sizes

SSD300 = SSDDefaultBoxes(steps=(8, 16, 32, 64, 100, 300), min_sizes=(21, 45, 99, 153, 207, 261),
                         max_sizes=(45, 99, 153, 207, 261, 315),
                         aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)))
SIZES_300 = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]


def around(cx, cy, w, h):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def test_counts_ssd300_and_ssd512():
    assert SSD300.num_boxes_per_location == [4, 6, 6, 6, 4, 4]
    boxes = SSD300.default_boxes(SIZES_300, (300, 300))
    assert [len(b) for b in boxes] == [38 * 38 * 4, 19 * 19 * 6, 10 * 10 * 6, 5 * 5 * 6, 3 * 3 * 4, 1 * 4]
    assert sum(len(b) for b in boxes) == (38 ** 2 + 3 ** 2 + 1 ** 2) * 4 + (19 ** 2 + 10 ** 2 + 5 ** 2) * 6 == 8732
    min_sizes, max_sizes = paper_box_sizes(512)
    ssd512 = SSDDefaultBoxes((8, 16, 32, 64, 128, 256, 512), min_sizes, max_sizes,
                             ((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)))
    boxes = ssd512.default_boxes([(s, s) for s in (64, 32, 16, 8, 4, 2, 1)], (512, 512))
    assert sum(len(b) for b in boxes) == (64 ** 2 + 2 ** 2 + 1) * 4 + (32 ** 2 + 16 ** 2 + 8 ** 2 + 4 ** 2) * 6 == 24564


def test_first_cells_by_hand_ssd300():
    boxes = SSD300.default_boxes(SIZES_300, (300, 300), dtype=torch.float64)
    r2, r3 = math.sqrt(2), math.sqrt(3)
    # conv4_3: step 8, cell (0, 0) centred on (4, 4); min 21, max 45; ratio 2.
    level0 = [[-6.5, -6.5, 14.5, 14.5],  # 21 x 21
              around(4, 4, math.sqrt(21 * 45), math.sqrt(21 * 45)),  # 30.74 x 30.74
              around(4, 4, 21 * r2, 21 / r2),  # wide 29.70 x 14.85
              around(4, 4, 21 / r2, 21 * r2)]  # tall
    torch.testing.assert_close(boxes[0][:4], torch.tensor(level0, dtype=torch.float64))
    # the next location is cell (0, 1): centre x = 1.5 * 8 = 12, same sizes
    torch.testing.assert_close(boxes[0][4], torch.tensor([12 - 10.5, 4 - 10.5, 12 + 10.5, 4 + 10.5], dtype=torch.float64))
    # the first box of row 1 (cell (1, 0)) comes after the 38 cells of row 0
    torch.testing.assert_close(boxes[0][38 * 4], torch.tensor([4 - 10.5, 12 - 10.5, 4 + 10.5, 12 + 10.5], dtype=torch.float64))
    # fc7: step 16, centre (8, 8); min 45, max 99; ratios 2 and 3.
    level1 = [around(8, 8, 45, 45), around(8, 8, math.sqrt(45 * 99), math.sqrt(45 * 99)),
              around(8, 8, 45 * r2, 45 / r2), around(8, 8, 45 / r2, 45 * r2),
              around(8, 8, 45 * r3, 45 / r3), around(8, 8, 45 / r3, 45 * r3)]
    torch.testing.assert_close(boxes[1][:6], torch.tensor(level1, dtype=torch.float64))
    # conv8_2 (step 32, centre 16, min 99) and conv9_2 (step 64, centre 32, min 153): first box
    torch.testing.assert_close(boxes[2][0], torch.tensor([16 - 49.5, 16 - 49.5, 16 + 49.5, 16 + 49.5], dtype=torch.float64))
    torch.testing.assert_close(boxes[3][0], torch.tensor([32 - 76.5, 32 - 76.5, 32 + 76.5, 32 + 76.5], dtype=torch.float64))
    # conv10_2: step 100, centre (50, 50); min 207, max 261; ratio 2 (wide 292.7 < 300, no clip)
    level4 = [[-53.5, -53.5, 153.5, 153.5], around(50, 50, math.sqrt(207 * 261), math.sqrt(207 * 261)),
              around(50, 50, 207 * r2, 207 / r2), around(50, 50, 207 / r2, 207 * r2)]
    torch.testing.assert_close(boxes[4][:4], torch.tensor(level4, dtype=torch.float64))
    # conv11_2: one cell centred on (150, 150); min 261, max 315: the wide box 261 * sqrt(2) =
    # 369.1 px is clipped to the image width 300 (and the tall box's height), centre kept.
    level5 = [[19.5, 19.5, 280.5, 280.5], around(150, 150, math.sqrt(261 * 315), math.sqrt(261 * 315)),
              around(150, 150, 300, 261 / r2), around(150, 150, 261 / r2, 300)]
    torch.testing.assert_close(boxes[5], torch.tensor(level5, dtype=torch.float64))


def test_without_clip_boxes_keep_their_size():
    unclipped = SSDDefaultBoxes(SSD300.steps, SSD300.min_sizes, SSD300.max_sizes, SSD300.aspect_ratios, clip=False)
    wide = unclipped.default_boxes(SIZES_300, (300, 300), dtype=torch.float64)[5][2]
    assert wide[2] - wide[0] == pytest.approx(261 * math.sqrt(2))


def test_matches_torchvision_default_box_generator():
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.image_list import ImageList

    generator = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                                    scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300])
    images = ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)])
    features = [torch.zeros(1, 1, h, w) for h, w in SIZES_300]
    expected = generator(images, features)[0]
    ours = torch.cat(SSD300.default_boxes(SIZES_300, (300, 300)))
    torch.testing.assert_close(ours, expected, atol=1e-3, rtol=0)


def test_paper_box_sizes():
    # Caffe ssd_pascal.py: min_ratio 20, max_ratio 90, step floor(70 / 4) = 17; conv4_3 10%.
    min_sizes, max_sizes = paper_box_sizes(300, "voc")
    assert min_sizes == pytest.approx((30, 60, 111, 162, 213, 264))
    assert max_sizes == pytest.approx((60, 111, 162, 213, 264, 315))
    # torchvision ssd300_vgg16 scales 0.07, 0.15, 0.33, ..., 1.05 times 300
    min_sizes, max_sizes = paper_box_sizes(300, "coco")
    assert min_sizes == pytest.approx((21, 45, 99, 153, 207, 261))
    assert max_sizes == pytest.approx((45, 99, 153, 207, 261, 315))
    # ssd_pascal_512.py: 4% on conv4_3, then 15..90 in steps of 15
    min_sizes, max_sizes = paper_box_sizes(512, "voc")
    assert min_sizes == pytest.approx([512 * p for p in (0.04, 0.15, 0.30, 0.45, 0.60, 0.75, 0.90)])
    assert max_sizes == pytest.approx([512 * p for p in (0.10, 0.30, 0.45, 0.60, 0.75, 0.90, 1.05)])
    with pytest.raises(ValueError, match="no paper box sizes for image size 128"):
        paper_box_sizes(128)


@pytest.mark.parametrize("kwargs,message", [
    (dict(steps=(8,), min_sizes=(21, 45), max_sizes=(45, 99), aspect_ratios=((2,), (2,))), "one entry per level"),
    (dict(steps=(8,), min_sizes=(45,), max_sizes=(21,), aspect_ratios=((2,),)), "level 0: need 0 < min_size (45) <= max_size (21)"),
    (dict(steps=(0,), min_sizes=(21,), max_sizes=(45,), aspect_ratios=((2,),)), "must be positive"),
])
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SSDDefaultBoxes(**kwargs)


def test_wrong_number_of_feature_maps():
    with pytest.raises(ValueError, match="5 feature maps for 6 levels"):
        SSD300.default_boxes(SIZES_300[:5], (300, 300))
