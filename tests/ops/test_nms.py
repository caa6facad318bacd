import pytest
import torch

from anchordet.ops.nms import batched_nms, nms, nms_reference


def test_hand_worked():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) suppresses box 0 (IoU 0.9) and box 1 (IoU 72/(90+100-72) = 0.61); box 2 is alone.
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms_reference(boxes, scores, 0.5).tolist() == [3, 2]


@pytest.mark.parametrize("seed", range(5))
def test_wrapper_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(200, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=g) * 30], 1)
    scores = torch.rand(200, generator=g)
    assert nms(boxes, scores, 0.5).tolist() == nms_reference(boxes, scores, 0.5).tolist()


def test_batched_groups_do_not_suppress_each_other():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8])
    assert batched_nms(boxes, scores, torch.tensor([0, 1]), 0.5).tolist() == [0, 1]
    assert batched_nms(boxes, scores, torch.tensor([0, 0]), 0.5).tolist() == [0]


def test_batched_groups_with_large_offsets_keep_exact_iou():
    """IoU 0.50001 > 0.5 suppresses. In group 1500 torchvision shifts the boxes by 1500 * 11 =
    16500, where float32 steps are 0.002 px: 16505.0001 rounds to 16505 and the IoU to 0.5
    exactly (kept). The wrapper shifts in float64 and suppresses, as in group 0."""
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5.0001]])
    scores = torch.tensor([0.9, 0.8])
    for group in (0, 1500):
        groups = torch.tensor([group, group])
        assert batched_nms(boxes, scores, groups, 0.5).tolist() == [0]
    from torchvision.ops import batched_nms as tv_batched_nms

    assert tv_batched_nms(boxes, scores, torch.tensor([1500, 1500]), 0.5).tolist() == [0, 1]  # float32 rounding
