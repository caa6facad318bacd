import pytest
import torch

from anchordet.matching.iou_matcher import IGNORE, NEGATIVE, POSITIVE
from anchordet.sampling.balanced import (ROI_SAMPLER, RPN_SAMPLER, BalancedSampler, sample_reference)


def _labels(num_pos, num_neg, num_ignore, generator):
    labels = torch.tensor([POSITIVE] * num_pos + [NEGATIVE] * num_neg + [IGNORE] * num_ignore, dtype=torch.int8)
    return labels[torch.randperm(len(labels), generator=generator)]


def test_paper_numbers():
    assert (RPN_SAMPLER.batch_size_per_image, RPN_SAMPLER.max_positives) == (256, 256 // 2)
    assert (ROI_SAMPLER.batch_size_per_image, ROI_SAMPLER.max_positives) == (128, 128 // 4)


@pytest.mark.parametrize("num_pos,num_neg,expected_pos,expected_neg", [
    (500, 5000, 128, 256 - 128),  # both capped
    (18, 5000, 18, 256 - 18),  # seed 003's case: few positives, negatives fill up to 256
    (0, 5000, 0, 256),  # no gt: all negatives
    (300, 40, 128, 40),  # too few negatives: fewer than 256 in all
    (0, 0, 0, 0),  # everything ignored
])
def test_rpn_counts(num_pos, num_neg, expected_pos, expected_neg):
    g = torch.Generator().manual_seed(0)
    labels = _labels(num_pos, num_neg, 100, g)
    masks = RPN_SAMPLER.sample(labels, g)
    assert int(masks.positive.sum()) == expected_pos and int(masks.negative.sum()) == expected_neg
    assert bool((labels[masks.positive] == POSITIVE).all()) and bool((labels[masks.negative] == NEGATIVE).all())


def test_batched_matches_plain_reference():
    g = torch.Generator().manual_seed(1)
    labels = torch.stack([_labels(p, n, 1000 - p - n, g) for p, n in [(50, 900), (3, 20), (0, 700), (60, 0)]])
    keys = torch.rand(labels.shape, generator=g)
    sampler = BalancedSampler(128, 0.25)
    got = sampler.select(labels, keys)
    expected = sample_reference(sampler, labels, keys)
    assert torch.equal(got.positive, expected.positive) and torch.equal(got.negative, expected.negative)
    assert got.positive.sum(dim=1).tolist() == [32, 3, 0, 32]
    assert got.negative.sum(dim=1).tolist() == [96, 20, 128, 0]


def test_uniform_and_reproducible():
    # 8 positives, room for 2: each should be drawn 2/8 of the time.
    labels = torch.tensor([POSITIVE] * 8 + [NEGATIVE] * 4, dtype=torch.int8).expand(4000, -1)
    sampler = BalancedSampler(4, 0.5)
    masks = sampler.sample(labels, torch.Generator().manual_seed(0))
    frequency = masks.positive[:, :8].float().mean(dim=0)
    assert torch.allclose(frequency, torch.full((8,), 2 / 8), atol=0.03)  # 4000 draws: std ~0.007
    again = sampler.sample(labels, torch.Generator().manual_seed(0))
    assert torch.equal(masks.positive, again.positive)
    torch.manual_seed(3)
    global_rng = sampler.sample(labels)
    torch.manual_seed(3)
    assert torch.equal(global_rng.negative, sampler.sample(labels).negative)


@pytest.mark.parametrize("args", [(0, 0.5), (256, 1.5)])
def test_bad_arguments(args):
    with pytest.raises(ValueError):
        BalancedSampler(*args)
