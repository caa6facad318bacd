import math
from types import SimpleNamespace

import pytest
import torch

from anchordet.coding.box_coder import SSD_BOX_CODER
from anchordet.losses.dense_targets import DenseTargetBuilder
from anchordet.losses.multibox import multibox_loss
from anchordet.matching.iou_matcher import IoUMatcher
from anchordet.structures.targets import Targets

BUILDER = DenseTargetBuilder(IoUMatcher(0.5, 0.5, low_quality="force"), SSD_BOX_CODER)
# ten 10x10 anchors side by side along x
ANCHORS = torch.tensor([[10.0 * i, 0, 10.0 * i + 10, 10] for i in range(10)])
K = 4


def test_no_gt_box_loss_zero_class_loss_positive():
    targets = BUILDER.build(ANCHORS, [Targets()])
    logits = torch.zeros(1, 10, K + 1)
    logits[0, :, K] = torch.arange(10.0)  # anchor i: background logit i, so anchors 0, 1, 2 are the hardest
    losses = multibox_loss(logits, torch.randn(1, 10, 4), targets, 3.0, min_negatives=3)
    assert losses["loss_box"].item() == 0.0
    # CE of background with logits (0, 0, 0, 0, b): log(4 + e^b) - b; three negatives, N = max(1, 0) = 1
    expected = sum(math.log(4 + math.exp(b)) - b for b in (0.0, 1.0, 2.0))
    assert losses["loss_cls"].item() == pytest.approx(expected, rel=1e-6)
    # torchvision's rule (no negatives without positives) gives no class loss at all
    assert multibox_loss(logits, torch.randn(1, 10, 4), targets, 3.0, min_negatives=0)["loss_cls"].item() == 0.0


def test_one_gt_by_hand():
    # the gt is anchor 3 exactly: IoU 1 with anchor 3, 0 with the others -> 1 positive, 9 negatives
    targets = BUILDER.build(ANCHORS, [Targets(torch.tensor([[30.0, 0, 40, 10]]), torch.tensor([2]))])
    assert targets.positive.nonzero()[:, 1].tolist() == [3]
    logits = torch.zeros(1, 10, K + 1, requires_grad=True)
    deltas = torch.zeros(1, 10, 4)
    deltas[0, 3] = torch.tensor([0.5, -2.0, 0.0, 0.0])  # the target deltas are 0 (box == anchor)
    deltas[0, 5] = 100.0  # a negative's deltas never count
    deltas.requires_grad_(True)
    losses = multibox_loss(logits, deltas, targets)
    # zero logits: every CE is log(K + 1); the positive + 3 hard negatives (ratio 3), N = 1
    assert losses["loss_cls"].item() == pytest.approx(4 * math.log(K + 1))
    # smooth L1 (beta 1): 0.5 * 0.5^2 + (2 - 0.5) = 1.625
    assert losses["loss_box"].item() == pytest.approx(0.5 * 0.5 ** 2 + (2 - 0.5))
    sum(losses.values()).backward()
    # gradient only on the positive and the 3 mined negatives (ties: lowest indices 0, 1, 2)
    touched = logits.grad.abs().sum(dim=-1)[0].nonzero().flatten().tolist()
    assert touched == [0, 1, 2, 3]
    assert deltas.grad[0].abs().sum(dim=-1).nonzero().flatten().tolist() == [3]


def test_ignored_anchors_are_not_negatives():
    # ignore regions [0, 15] and [65, 80] (x): IoU 100 / 150 = 0.67 >= 0.5 with anchors 0 and 7,
    # 50 / 200 = 0.25 with their neighbours; the gt is anchor 8.
    gt = Targets(torch.tensor([[0.0, 0, 15, 10], [65.0, 0, 80, 10], [80.0, 0, 90, 10]]), torch.tensor([0, 0, 1]),
                 torch.tensor([True, True, False]))
    targets = BUILDER.build(ANCHORS, [gt])
    assert targets.positive.nonzero()[:, 1].tolist() == [8]
    assert (~targets.valid).nonzero()[:, 1].tolist() == [0, 7]
    logits = torch.zeros(1, 10, K + 1)
    logits[0, :, K] = -torch.arange(10.0)  # anchor i: background logit -i, later anchors are harder
    losses = multibox_loss(logits, torch.zeros(1, 10, 4), targets, 3.0, 0)
    positive_ce = math.log(4 + math.exp(-8.0))  # anchor 8, class 1 (logit 0)
    # the hardest negatives are 9, 6, 5: the ignored anchor 7 would be harder than 6 but is skipped
    negatives = [math.log(4 + math.exp(-b)) + b for b in (9.0, 6.0, 5.0)]
    assert losses["loss_cls"].item() == pytest.approx(positive_ce + sum(negatives), rel=1e-6)


def test_matches_torchvision_ssd_loss():
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.ssd import SSD as TorchvisionSSD
    from torchvision.ops import box_iou

    g = torch.Generator().manual_seed(0)
    centres = torch.rand(200, 2, generator=g) * 100
    sizes = torch.rand(200, 2, generator=g) * 30 + 5
    anchors = torch.cat((centres - sizes / 2, centres + sizes / 2), dim=1)
    gts = [Targets(torch.tensor([[10.0, 10, 40, 30], [60.0, 50, 90, 95]]), torch.tensor([0, 3])),
           Targets(torch.tensor([[20.0, 60, 45, 90]]), torch.tensor([1])),
           Targets(torch.tensor([[5.0, 5, 95, 95], [50.0, 5, 70, 40], [5.0, 70, 30, 95]]), torch.tensor([2, 2, 0]))]
    logits = torch.randn(3, 200, K + 1, generator=g)
    deltas = torch.randn(3, 200, 4, generator=g)
    ours = multibox_loss(logits, deltas, BUILDER.build(anchors, gts), 3.0, min_negatives=0)

    matcher = det_utils.SSDMatcher(0.5)
    tv_targets = [{"boxes": t.boxes, "labels": t.labels + 1} for t in gts]  # background is 0 there
    matched = [matcher(box_iou(t.boxes, anchors)) for t in gts]
    tv_logits = torch.cat((logits[..., K:], logits[..., :K]), dim=-1)  # background first
    fake = SimpleNamespace(box_coder=det_utils.BoxCoder((10.0, 10.0, 5.0, 5.0)), neg_to_pos_ratio=3.0)
    theirs = TorchvisionSSD.compute_loss(fake, tv_targets, {"cls_logits": tv_logits, "bbox_regression": deltas},
                                         [anchors] * 3, matched)
    torch.testing.assert_close(ours["loss_cls"], theirs["classification"])
    torch.testing.assert_close(ours["loss_box"], theirs["bbox_regression"])
