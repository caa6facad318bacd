"""RoI (proposal) targets: gt boxes added, foreground / background ranges, ignore regions."""
import torch

from anchordet import Targets
from anchordet.losses.roi_targets import RoITargetBuilder
from anchordet.matching.iou_matcher import IoUMatcher
from anchordet.sampling.balanced import BalancedSampler


def test_gt_boxes_are_added_to_the_proposals():
    builder = RoITargetBuilder(sampler=BalancedSampler(8, 0.25))
    gt = Targets(torch.tensor([[10.0, 10, 50, 50]]), torch.tensor([2]))
    far = torch.tensor([[60.0, 60, 90, 90], [0.0, 60, 20, 90]])  # IoU 0 with the gt: background
    sampled = builder.build([far], [gt], num_classes=3)
    assert sampled.labels.tolist() == [2, 3, 3]  # the gt itself (class 2), then background (K = 3)
    assert torch.equal(sampled.proposals[0][0], gt.boxes[0]) and torch.equal(sampled.box_targets[0], torch.zeros(4))
    without = RoITargetBuilder(sampler=BalancedSampler(8, 0.25), add_gt_boxes=False).build([far], [gt], 3)
    assert without.labels.tolist() == [3, 3]


def test_roi_box_targets_and_background_range():
    builder = RoITargetBuilder(IoUMatcher(0.5, 0.5), bg_iou_low=0.1, add_gt_boxes=False)
    gt = Targets(torch.tensor([[0.0, 0, 40, 40]]), torch.tensor([1]))
    proposals = torch.tensor([[4.0, 0, 44, 40],  # IoU 36/44: foreground
                              [20.0, 0, 60, 40],  # IoU 1/3: background
                              [38.0, 0, 78, 40]])  # IoU 2/78 < 0.1: neither
    sampled = builder.build([proposals], [gt], num_classes=2)
    assert sampled.labels.tolist() == [1, 2]
    # weights 10, 10, 5, 5: dx = 10 * (20 - 24) / 40 = -1
    torch.testing.assert_close(sampled.box_targets[0], torch.tensor([-1.0, 0, 0, 0]))


def test_proposals_on_ignore_regions_are_not_background():
    builder = RoITargetBuilder(add_gt_boxes=False)
    gt = Targets(torch.tensor([[0.0, 0, 40, 40], [50, 50, 90, 90]]), torch.tensor([0, 1]), torch.tensor([False, True]))
    proposals = torch.tensor([[52.0, 50, 92, 90], [0.0, 50, 40, 90]])  # on the crowd region; free
    sampled = builder.build([proposals], [gt], num_classes=2)
    assert sampled.labels.tolist() == [2] and torch.equal(sampled.proposals[0], proposals[1:])
