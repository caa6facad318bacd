import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from anchordet.anchors.grid import GridAnchorGenerator, anchors_inside, retinanet_anchor_sizes


def test_base_anchors_hand_worked():
    gen = GridAnchorGenerator(((32.0,),), (0.5, 1.0, 2.0), (8,))
    base = gen.base_anchors(0)
    # ratio = h / w, area = 32^2: (w, h) = (32 sqrt2, 32 / sqrt2), (32, 32), (32 / sqrt2, 32 sqrt2)
    r = math.sqrt(2)
    expected = torch.tensor([
        [-16 * r, -16 / r, 16 * r, 16 / r],
        [-16.0, -16.0, 16.0, 16.0],
        [-16 / r, -16 * r, 16 / r, 16 * r],
    ])
    torch.testing.assert_close(base, expected)


def test_grid_order_location_major_then_ratio_then_size():
    gen = GridAnchorGenerator(((8.0, 16.0),), (1.0, 2.0), (10,))
    (anchors,) = gen.grid_anchors([(2, 3)])
    assert anchors.shape == (2 * 3 * 4, 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    # location (y=1, x=2) is the 6th location: anchors 20..23, centre ((2 + .5) * 10, (1 + .5) * 10)
    torch.testing.assert_close(centres[20:24], torch.tensor([[25.0, 15.0]] * 4))
    widths = anchors[:4, 2] - anchors[:4, 0]
    r = math.sqrt(2)
    torch.testing.assert_close(widths, torch.tensor([8.0, 16.0, 8 / r, 16 / r]))


def test_matches_torchvision_with_its_conventions():
    sizes = [(32, 40, 50), (64, 80, 101)]
    ratios = (0.5, 1.0, 2.0)
    tv = AnchorGenerator(tuple(sizes), (ratios,) * 2)
    images = ImageList(torch.zeros(1, 3, 64, 96), [(64, 96)])
    features = [torch.zeros(1, 1, 8, 12), torch.zeros(1, 1, 4, 6)]
    expected = tv(images, features)[0]
    ours = GridAnchorGenerator(sizes, ratios, (8, 16), offset=0.0, round_base=True)
    torch.testing.assert_close(torch.cat(ours.grid_anchors([(8, 12), (4, 6)])), expected)


def test_retinanet_sizes_paper():
    sizes = retinanet_anchor_sizes()
    assert len(sizes) == 5 and sizes[0][0] == 32 and sizes[-1][0] == 512
    assert sizes[0][1] == pytest.approx(32 * 2 ** (1 / 3)) and sizes[0][2] == pytest.approx(32 * 2 ** (2 / 3))


def test_seed_retinanet_anchor_count():
    gen = GridAnchorGenerator(retinanet_anchor_sizes(), (0.5, 1.0, 2.0), (8, 16, 32, 64, 128))
    feature_sizes = gen.feature_sizes_for((640, 832))
    assert feature_sizes == [(80, 104), (40, 52), (20, 26), (10, 13), (5, 7)]
    assert sum(a.shape[0] for a in gen.grid_anchors(feature_sizes)) == 99765


def test_anchors_inside():
    anchors = torch.tensor([[0.0, 0, 10, 10], [-1, 0, 10, 10], [0, 0, 10, 21]])
    assert anchors_inside(anchors, (20, 10)).tolist() == [True, False, False]
    assert anchors_inside(anchors, (20, 10), tolerance=1).tolist() == [True, True, True]


def test_no_feature_cells_gives_no_anchors():
    gen = GridAnchorGenerator(((8.0,),), (1.0,), (8,))
    assert gen.grid_anchors([(0, 5)])[0].shape == (0, 4)


@pytest.mark.parametrize("kwargs,message", [
    (dict(sizes_per_level=((8.0,),), aspect_ratios=(1.0,), strides=(8, 16)), "1 levels of sizes but 2 strides"),
    (dict(sizes_per_level=((8.0,), (4.0, 5.0)), aspect_ratios=(1.0,), strides=(8, 16)), "same number of sizes"),
    (dict(sizes_per_level=((8.0,),), aspect_ratios=(0.0,), strides=(8,)), "positive"),
])
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GridAnchorGenerator(**kwargs)
