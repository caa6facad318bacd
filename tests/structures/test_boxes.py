import pytest
import torch
from torchvision.ops import box_iou as tv_box_iou

from anchordet.structures.boxes import (
    box_area, box_cxcywh_to_xyxy, box_ioa, box_iou, box_xywh_to_xyxy, box_xyxy_to_cxcywh,
    box_xyxy_to_xywh, clip_boxes, clip_boxes_to_sizes, nonempty_mask,
)


def random_boxes(n, size=100.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_conversions_hand_worked():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 80.0]])
    assert box_xyxy_to_cxcywh(boxes).tolist() == [[30.0, 50.0, 40.0, 60.0]]
    assert box_xyxy_to_xywh(boxes).tolist() == [[10.0, 20.0, 40.0, 60.0]]


@pytest.mark.parametrize("forward,backward", [
    (box_xyxy_to_cxcywh, box_cxcywh_to_xyxy), (box_xyxy_to_xywh, box_xywh_to_xyxy),
])
def test_conversion_round_trip(forward, backward):
    boxes = random_boxes(50)
    torch.testing.assert_close(backward(forward(boxes)), boxes)


def test_iou_hand_worked():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 1.0, 2.0]])
    expected = torch.tensor([[1 / (4 + 4 - 1), 1.0, 0.0, 2 / 4]])
    torch.testing.assert_close(box_iou(a, b), expected)


def test_iou_matches_torchvision():
    a, b = random_boxes(30, seed=1), random_boxes(40, seed=2)
    torch.testing.assert_close(box_iou(a, b), tv_box_iou(a, b))


def test_iou_empty_inputs_and_zero_area():
    assert box_iou(torch.zeros(0, 4), random_boxes(3)).shape == (0, 3)
    assert box_iou(random_boxes(3), torch.zeros(0, 4)).shape == (3, 0)
    zero = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert box_iou(zero, zero).item() == 0.0  # not NaN


def test_ioa_is_fraction_of_first_box_inside_region():
    box = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    region = torch.tensor([[1.0, 0.0, 10.0, 10.0]])
    assert box_ioa(box, region).item() == pytest.approx(2 / 4)


def test_area_clip_nonempty():
    boxes = torch.tensor([[-5.0, -5.0, 20.0, 30.0], [3.0, 3.0, 3.0, 8.0]])
    assert box_area(boxes).tolist() == [25 * 35, 0.0]
    assert clip_boxes(boxes, (25, 10)).tolist() == [[0.0, 0.0, 10.0, 25.0], [3.0, 3.0, 3.0, 8.0]]
    assert nonempty_mask(boxes).tolist() == [True, False]


def test_clip_boxes_to_sizes_equals_clip_boxes_per_image():
    boxes = random_boxes(40, size=120.0).reshape(2, 20, 4) - 10  # some outside on every side
    sizes = [(64, 96), (100, 50)]
    batched = clip_boxes_to_sizes(boxes, torch.tensor(sizes)[:, None])  # (B, N, 4) with (B, 1, 2)
    for image, size in enumerate(sizes):
        assert torch.equal(batched[image], clip_boxes(boxes[image], size))
    flat_sizes = torch.tensor(sizes).repeat_interleave(20, dim=0)  # (R, 2): each flat box's own image
    assert torch.equal(clip_boxes_to_sizes(boxes.reshape(-1, 4), flat_sizes), batched.reshape(-1, 4))
    assert clip_boxes_to_sizes(torch.tensor([[-5.0, -5, 20, 30]]), torch.tensor([[25, 10]])).tolist() == [
        [0.0, 0.0, 10.0, 25.0]]
