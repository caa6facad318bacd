"""ops/merge.py: the cross-tile merge against its slow reference and torchvision's batched NMS."""
import pytest
import torch
from torchvision.ops import batched_nms

from anchordet.ops.merge import greedy_nmm, greedy_nms, match_matrix, merge_reference, tile_pairs


def random_boxes(n, seed, groups=4, classes=3):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 30 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(n, generator=g).round(decimals=2)  # ties: the stable order must agree
    return boxes, scores, torch.randint(0, classes, (n,), generator=g), torch.randint(0, groups, (n,), generator=g)


def all_group_pairs(groups):
    count = int(groups.max()) + 1
    return [(a, b) for a in range(count) for b in range(a + 1, count)]


@pytest.mark.parametrize("method", ["nms", "nmm"])
@pytest.mark.parametrize("metric", ["ios", "iou"])
@pytest.mark.parametrize("agnostic", [False, True])
def test_merge_equals_the_slow_reference(method, metric, agnostic):
    for seed in range(5):
        boxes, scores, labels, groups = random_boxes(120, seed)
        pairs = tile_pairs(boxes, labels, groups, all_group_pairs(groups), metric, 0.4, agnostic)
        keep_ref, boxes_ref = merge_reference(boxes, scores, labels, groups, method, metric, 0.4, agnostic)
        if method == "nms":
            keep = greedy_nms(scores, pairs)
            merged = boxes[keep]
        else:
            keep, merged = greedy_nmm(boxes, scores, pairs)
        assert keep.tolist() == keep_ref
        torch.testing.assert_close(merged, torch.tensor(boxes_ref), rtol=0, atol=1e-5)
        assert len(keep) < len(boxes)  # something was merged: the test means something


def test_nms_by_iou_with_one_box_per_tile_is_torchvisions_batched_nms():
    for seed in range(5):
        boxes, scores, labels, _ = random_boxes(150, seed)
        scores = scores + torch.arange(150) * 1e-6  # torchvision's order of ties is unspecified
        groups = torch.arange(150)
        pairs = tile_pairs(boxes, labels, groups, all_group_pairs(groups), "iou", 0.5)
        assert greedy_nms(scores, pairs).tolist() == batched_nms(boxes, scores, labels, 0.5).tolist()


def test_boxes_of_one_tile_never_merge_and_only_neighbouring_tiles_are_compared():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 9, 9], [2, 2, 8, 8.]])
    labels = torch.zeros(3, dtype=torch.int64)
    same = tile_pairs(boxes, labels, torch.tensor([0, 0, 0]), [], "ios", 0.5)
    assert greedy_nms(torch.tensor([0.9, 0.8, 0.7]), same).tolist() == [0, 1, 2]
    groups = torch.tensor([0, 1, 2])
    only_01 = tile_pairs(boxes, labels, groups, [(0, 1)], "ios", 0.5)
    assert greedy_nms(torch.tensor([0.9, 0.8, 0.7]), only_01).tolist() == [0, 2]


def test_ios_of_a_box_inside_another_is_one_and_iou_its_area_share():
    whole, part = torch.tensor([[0., 0, 30, 10]]), torch.tensor([[20., 0, 30, 10]])
    assert float(match_matrix(whole, part, "ios")) == 1.0
    assert float(match_matrix(whole, part, "iou")) == pytest.approx(1 / 3)
    assert float(match_matrix(whole, torch.tensor([[40., 0, 50, 10]]), "ios")) == 0.0
