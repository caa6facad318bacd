import pytest
import torch

from anchordet.matching.iou_matcher import IGNORE, NEGATIVE, POSITIVE, IoUMatcher


def test_thresholds_and_ignore_band():
    iou = torch.tensor([[0.6, 0.45, 0.3, 0.5, 0.4]])
    result = IoUMatcher(0.5, 0.4).match(iou)
    assert result.labels.tolist() == [POSITIVE, IGNORE, NEGATIVE, POSITIVE, IGNORE]
    assert result.max_iou.tolist() == pytest.approx([0.6, 0.45, 0.3, 0.5, 0.4])


def test_best_gt_wins():
    iou = torch.tensor([[0.7, 0.1], [0.8, 0.9]])
    result = IoUMatcher(0.5, 0.4).match(iou)
    assert result.gt_index.tolist() == [1, 1]


def test_low_quality_ties_keep_their_own_best_gt():
    # gt 0 reaches at most 0.3 (anchors 0 and 2 tie); anchor 2 overlaps gt 1 more.
    iou = torch.tensor([[0.3, 0.1, 0.3], [0.0, 0.2, 0.35]])
    result = IoUMatcher(0.5, 0.4, low_quality="ties").match(iou)
    assert result.labels.tolist() == [POSITIVE, NEGATIVE, POSITIVE]
    assert result.gt_index.tolist() == [0, 1, 1]


def test_low_quality_force_assigns_best_anchor_to_that_gt():
    # SSD: gt 0's best anchor is anchor 1, which overlaps gt 1 more; forced to gt 0.
    iou = torch.tensor([[0.1, 0.4, 0.0], [0.0, 0.6, 0.65]])
    result = IoUMatcher(0.5, 0.5, low_quality="force").match(iou)
    assert result.labels.tolist() == [NEGATIVE, POSITIVE, POSITIVE]
    assert result.gt_index.tolist() == [0, 0, 1]


def test_force_shared_best_anchor_goes_to_later_gt():
    iou = torch.tensor([[0.3, 0.1], [0.2, 0.0]])
    result = IoUMatcher(0.5, 0.5, low_quality="force").match(iou)
    assert result.gt_index[0].item() == 1 and result.labels[0].item() == POSITIVE


@pytest.mark.parametrize("mode", ["ties", "force"])
def test_gt_with_zero_overlap_makes_no_positive(mode):
    iou = torch.zeros(1, 4)
    assert (IoUMatcher(0.5, 0.4, low_quality=mode).match(iou).labels == NEGATIVE).all()


def test_no_gt_all_negative_and_no_anchors():
    result = IoUMatcher(0.5, 0.4, "ties").match(torch.zeros(0, 3))
    assert result.labels.tolist() == [NEGATIVE] * 3
    assert IoUMatcher(0.5, 0.4, "ties").match(torch.zeros(2, 0)).labels.shape == (0,)


def test_bad_thresholds():
    with pytest.raises(ValueError):
        IoUMatcher(0.3, 0.5)
    with pytest.raises(ValueError):
        IoUMatcher(0.5, 0.4, low_quality="all")
