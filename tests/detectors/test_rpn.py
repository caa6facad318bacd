import math

import pytest
import torch

from anchordet import Targets
from anchordet.anchors.grid import GridAnchorGenerator, anchors_inside
from anchordet.detectors.rpn import RegionProposalNetwork
from anchordet.postprocess.proposals import TEST_PROPOSALS, TRAIN_PROPOSALS, ProposalGenerator, ProposalSettings
from anchordet.heads.rpn import RPNHead
from anchordet.matching.iou_matcher import IGNORE, NEGATIVE, POSITIVE

PAPER_ANCHORS = GridAnchorGenerator(((128, 256, 512),), (0.5, 1.0, 2.0), (16,))


def _rpn(anchors=PAPER_ANCHORS, **options):
    torch.manual_seed(0)
    return RegionProposalNetwork(RPNHead(4, anchors.num_anchors_per_location, 8), anchors, **options)


def _zero_head(rpn):
    with torch.no_grad():
        for p in list(rpn.head.cls_logits.parameters()) + list(rpn.head.bbox_pred.parameters()):
            p.zero_()


def test_seed_003_numbers():
    rpn = _rpn()
    out = rpn(torch.randn(1, 4, 800 // 16, 800 // 16))
    assert out.anchors.shape == (50 * 50 * 9, 4) == (22500, 4)
    assert out.objectness.shape == (1, 22500) and out.box_deltas.shape == (1, 22500, 4)
    assert int(anchors_inside(out.anchors, (800, 800)).sum()) == 8940  # seed 003's valid anchors
    # seed 003's first anchor centre: (16 - 16 / 2, 16 - 16 / 2); scales 8/16/32 of 16 px
    centres = (out.anchors[:9, :2] + out.anchors[:9, 2:]) / 2
    assert torch.equal(centres, torch.full((9, 2), 8.0))
    widths = out.anchors[:9, 2] - out.anchors[:9, 0]
    heights = out.anchors[:9, 3] - out.anchors[:9, 1]
    torch.testing.assert_close(widths * heights, torch.tensor([128.0, 256, 512] * 3) ** 2)
    assert (TRAIN_PROPOSALS, TEST_PROPOSALS) == (ProposalSettings(12000, 2000), ProposalSettings(6000, 300))
    assert ProposalGenerator() == ProposalGenerator(nms_thresh=0.7, min_size=16.0)
    assert (rpn.sampler.batch_size_per_image, rpn.sampler.positive_fraction) == (256, 0.5)


ONE_SIZE = GridAnchorGenerator(((32,),), (1.0,), (16,))  # a 4x4 map of a 64x64 image: 16 anchors


def test_anchor_targets_hand_built():
    # anchor (row i, column j) = [16j - 8, 16i - 8, 16j + 24, 16i + 24]; inside 64x64: i, j in {1, 2}
    rpn = _rpn(ONE_SIZE)
    anchors = rpn(torch.zeros(1, 4, 4, 4)).anchors
    gt = Targets(torch.tensor([[8.0, 8, 40, 40]]), torch.tensor([0]))  # anchor (1, 1) exactly
    dense = rpn.build_targets(anchors, [gt], [(64, 64)])
    labels = dense.match_labels[0].reshape(4, 4)
    expected = torch.full((4, 4), IGNORE, dtype=torch.int8)  # border-crossing anchors
    expected[1, 1] = POSITIVE  # IoU 1
    expected[1, 2] = expected[2, 1] = IGNORE  # IoU (16 * 32) / (2 * 1024 - 512) = 1/3: in [0.3, 0.7)
    expected[2, 2] = NEGATIVE  # IoU (16 * 16) / (2 * 1024 - 256) = 1/7 < 0.3
    assert torch.equal(labels, expected)
    assert torch.equal(dense.box_targets[0, 5], torch.zeros(4))


def test_best_inside_anchor_is_positive_even_when_a_border_anchor_is_better():
    # gt [0, 0, 20, 20]: its best anchor overall is the border-crossing (0, 0) (IoU 400/1024);
    # among inside anchors (1, 1) is best with IoU 144 / (400 + 1024 - 144) = 0.1125: seed 003
    # matches inside anchors only, so (1, 1) becomes positive.
    rpn = _rpn(ONE_SIZE)
    anchors = rpn(torch.zeros(1, 4, 4, 4)).anchors
    gt = Targets(torch.tensor([[0.0, 0, 20, 20]]), torch.tensor([0]))
    dense = rpn.build_targets(anchors, [gt], [(64, 64)])
    assert torch.nonzero(dense.match_labels[0] == POSITIVE).flatten().tolist() == [5]
    torch.testing.assert_close(dense.max_iou[0, 5], torch.tensor(144 / 1280))
    # without the border rule every anchor takes part and the (0, 0) one wins
    dense = _rpn(ONE_SIZE, allowed_border=None).build_targets(anchors, [gt], [(64, 64)])
    assert torch.nonzero(dense.match_labels[0] == POSITIVE).flatten().tolist() == [0]


def test_per_image_sizes_decide_inside_anchors():
    rpn = _rpn(ONE_SIZE)
    anchors = rpn(torch.zeros(2, 4, 4, 4)).anchors
    dense = rpn.build_targets(anchors, [Targets(), Targets()], [(64, 64), (40, 64)])
    # no gt: inside anchors are negative; a 40-high image has only row 1 inside (16 + 24 <= 40)
    assert int((dense.match_labels[0] == NEGATIVE).sum()) == 4
    assert int((dense.match_labels[1] == NEGATIVE).sum()) == 2


def test_loss_hand_worked_and_no_gt():
    rpn = _rpn(ONE_SIZE)
    _zero_head(rpn)
    out = rpn(torch.randn(1, 4, 4, 4))
    # all logits 0: BCE is ln 2 for every sampled anchor; deltas 0 vs target 0 of the exact anchor
    losses = rpn.loss(out, [Targets(torch.tensor([[8.0, 8, 40, 40]]), torch.tensor([0]))], [(64, 64)])
    torch.testing.assert_close(losses["loss_rpn_cls"], torch.tensor(math.log(2)))
    assert losses["loss_rpn_box"].item() == 0.0
    # gt shifted by 4 px: target dx = 4 / 32 = 0.125 >= beta 1/9, so smooth L1 = 0.125 - 0.5 / 9
    losses = rpn.loss(out, [Targets(torch.tensor([[12.0, 8, 44, 40]]), torch.tensor([0]))], [(64, 64)])
    # anchors (1, 1) IoU 28*32 / (2048 - 896) = 0.78 positive, (1, 2) IoU 20*32/(2048-640) = 0.45 ignored,
    # (2, 1) IoU 28*16/(2048-448) = 0.28 negative, (2, 2) negative: 3 sampled
    torch.testing.assert_close(losses["loss_rpn_box"], torch.tensor((0.125 - 0.5 / 9) / 3))
    empty = rpn.loss(out, [Targets()], [(64, 64)])
    assert empty["loss_rpn_box"].item() == 0.0 and empty["loss_rpn_cls"].item() > 0


def test_box_loss_trains_the_head():  # seed 003 detached it
    rpn = _rpn(ONE_SIZE)
    out = rpn(torch.randn(1, 4, 4, 4))
    losses = rpn.loss(out, [Targets(torch.tensor([[12.0, 8, 44, 40]]), torch.tensor([0]))], [(64, 64)])
    losses["loss_rpn_box"].backward()
    assert rpn.head.bbox_pred.weight.grad.abs().sum() > 0 and rpn.head.conv.weight.grad.abs().sum() > 0


def test_proposals_are_detached():
    rpn = _rpn(ONE_SIZE, proposal_generator=ProposalGenerator(min_size=0.0))
    out = rpn(torch.randn(1, 4, 4, 4))
    proposals = rpn.proposals(out, [(64, 64)], ProposalSettings(10, 5))
    assert len(proposals.boxes[0]) <= 5 and not proposals.boxes[0].requires_grad


def test_needs_one_level():
    with pytest.raises(ValueError, match="one feature map"):
        RegionProposalNetwork(RPNHead(4, 9), GridAnchorGenerator(((32,), (64,)), (1.0,), (8, 16)))
