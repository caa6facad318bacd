import torch

from anchordet.coding.box_coder import BoxCoder
from anchordet.losses.dense_targets import IGNORE, NEGATIVE, POSITIVE, DenseTargetBuilder
from anchordet.matching.iou_matcher import IoUMatcher
from anchordet.structures.targets import Targets

ANCHORS = torch.tensor([
    [0.0, 0.0, 10.0, 10.0],    # equals gt 0
    [0.0, 0.0, 10.0, 20.0],    # IoU 0.5 with gt 0
    [30.0, 30.0, 40.0, 40.0],  # far from everything
    [50.0, 50.0, 60.0, 60.0],  # inside the ignore region
])
BUILDER = DenseTargetBuilder(IoUMatcher(0.5, 0.4), BoxCoder())


def test_labels_boxes_and_targets():
    targets = Targets(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([3]))
    out = BUILDER.build(ANCHORS, [targets])
    assert out.match_labels.tolist() == [[POSITIVE, POSITIVE, NEGATIVE, NEGATIVE]]
    assert out.gt_labels.tolist() == [[3, 3, 0, 0]]
    assert out.num_positives.item() == 2
    torch.testing.assert_close(out.box_targets[0, 0], torch.zeros(4))
    # anchor 1 (centre (5, 10), 10 x 20) -> gt (centre (5, 5), 10 x 10): dy = -5/20, dh = log(1/2)
    torch.testing.assert_close(out.box_targets[0, 1], torch.tensor([0.0, -0.25, 0.0, -0.6931472]))
    assert out.matched_boxes[0, 2].abs().sum() == 0


def test_no_gt_all_negative_zero_targets():
    out = BUILDER.build(ANCHORS, [Targets()])
    assert (out.match_labels == NEGATIVE).all() and out.box_targets.abs().sum() == 0


def test_ignore_region_makes_overlapping_anchors_ignored():
    targets = Targets(torch.tensor([[0.0, 0.0, 10.0, 10.0], [49.0, 49.0, 61.0, 61.0]]), torch.tensor([0, 1]),
                      torch.tensor([False, True]))
    out = BUILDER.build(ANCHORS, [targets])
    assert out.match_labels.tolist() == [[POSITIVE, POSITIVE, NEGATIVE, IGNORE]]


def test_allowed_border_ignores_anchors_outside():
    builder = DenseTargetBuilder(IoUMatcher(0.7, 0.3), BoxCoder(), allowed_border=0.0)
    out = builder.build(ANCHORS, [Targets()], image_sizes=[(15, 45)])
    assert out.match_labels.tolist() == [[NEGATIVE, IGNORE, IGNORE, IGNORE]]


def test_batch_equals_per_image():
    t1 = Targets(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([1]))
    t2 = Targets(torch.tensor([[29.0, 29.0, 41.0, 41.0]]), torch.tensor([2]))
    out = BUILDER.build(ANCHORS, [t1, t2])
    for i, t in enumerate([t1, t2]):
        single = BUILDER.build_per_image(ANCHORS, t)
        for batched, plain in zip(out, single):
            torch.testing.assert_close(batched[i], plain)


def test_no_anchors():
    out = BUILDER.build(torch.zeros(0, 4), [Targets(torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([0]))])
    assert out.match_labels.shape == (1, 0) and out.box_targets.shape == (1, 0, 4)


def test_border_rule_matches_the_inside_anchors_only():
    # image 15 x 45: anchor 0 is inside, 1 reaches y = 20 (outside), 2 and 3 lie beyond x = 45 or y = 15
    gt = Targets(torch.tensor([[0.0, 0.0, 10.0, 20.0]]), torch.tensor([4]))  # equals anchor 1
    builder = DenseTargetBuilder(IoUMatcher(0.7, 0.3, low_quality="ties"), BoxCoder(), allowed_border=0.0)
    out = builder.build(ANCHORS, [gt], image_sizes=[(15, 45)])
    # anchor 0 (IoU 100 / 200 = 0.5) is the gt's best *inside* anchor: positive by the low-quality rule
    assert out.match_labels.tolist() == [[POSITIVE, IGNORE, IGNORE, IGNORE]] and out.gt_labels[0, 0] == 4
    everyone = DenseTargetBuilder(IoUMatcher(0.7, 0.3, low_quality="ties"), BoxCoder()).build(ANCHORS, [gt])
    assert everyone.match_labels.tolist() == [[IGNORE, POSITIVE, NEGATIVE, NEGATIVE]]  # 0.5 in [0.3, 0.7)
