import math

import pytest
import torch

from anchordet.sampling.hard_negatives import mine_hard_negatives, num_hard_negatives


def mine_per_image_reference(loss, positive, negative, ratio, min_negatives):
    """Plain per-image version: for each image, list its candidate negatives, sort them by loss
    (hardest first, lower index first among equals) and keep the first n."""
    selected = torch.zeros_like(negative)
    for i in range(loss.shape[0]):
        candidates = [j for j in range(loss.shape[1]) if negative[i, j]]
        n = max(math.ceil(ratio * int(positive[i].sum())), min_negatives)
        n = min(n, len(candidates))
        candidates.sort(key=lambda j: (-float(loss[i, j]), j))
        for j in candidates[:n]:
            selected[i, j] = True
    return selected


def random_batch(seed, batch=4, anchors=50, ties=False):
    g = torch.Generator().manual_seed(seed)
    loss = torch.rand(batch, anchors, generator=g)
    if ties:
        loss = (loss * 4).floor()  # only 4 distinct values
    state = torch.randint(0, 10, (batch, anchors), generator=g)
    positive = state == 0
    negative = state >= 2  # state 1: ignored
    positive[0] = False  # an image without positives
    return loss, positive, negative


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ratio,min_negatives", [(3.0, 3), (3.0, 0), (0.5, 0), (2.5, 1), (100.0, 0)])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_plain_reference(seed, ratio, min_negatives, ties):
    loss, positive, negative = random_batch(seed, ties=ties)
    mined = mine_hard_negatives(loss, positive, negative, ratio, min_negatives)
    assert torch.equal(mined, mine_per_image_reference(loss, positive, negative, ratio, min_negatives))


def test_hand_example():
    # 1 positive (index 0), index 1 ignored, negatives 2..7 with losses below: ratio 3 keeps
    # the 3 hardest negatives, 0.9 (index 4), 0.8 (index 7), 0.7 (index 2); the ignored anchor's
    # larger loss (5.0) and the positive's (9.0) do not count.
    loss = torch.tensor([[9.0, 5.0, 0.7, 0.1, 0.9, 0.2, 0.3, 0.8]])
    positive = torch.tensor([[True, False, False, False, False, False, False, False]])
    negative = torch.tensor([[False, False, True, True, True, True, True, True]])
    mined = mine_hard_negatives(loss, positive, negative, 3.0, 0)
    assert mined.nonzero()[:, 1].tolist() == [2, 4, 7]


def test_counts():
    positives = torch.tensor([0, 0, 1, 2, 10])
    candidates = torch.tensor([100, 2, 100, 100, 25])
    # ceil(3 * p), at least 3, at most the candidates
    assert num_hard_negatives(positives, candidates, 3.0, 3).tolist() == [3, 2, 3, 6, 25]
    # torchvision's rule (rank < ratio * p) keeps ceil(ratio * p): 0.75 * 2 = 1.5 -> 2
    assert num_hard_negatives(torch.tensor([2]), torch.tensor([10]), 0.75, 0).tolist() == [2]


def test_no_positive_image_mines_min_negatives_and_zero_mines_none():
    loss = torch.tensor([[0.5, 0.4, 0.3, 0.2, 0.1]])
    none = torch.zeros(1, 5, dtype=torch.bool)
    everything = torch.ones(1, 5, dtype=torch.bool)
    assert mine_hard_negatives(loss, none, everything, 3.0, 3).tolist() == [[True, True, True, False, False]]
    assert not mine_hard_negatives(loss, none, everything, 3.0, 0).any()


def test_no_anchors_and_no_candidates():
    empty = torch.zeros(2, 0, dtype=torch.bool)
    assert mine_hard_negatives(torch.zeros(2, 0), empty, empty).shape == (2, 0)
    loss = torch.rand(1, 4)
    all_positive = torch.ones(1, 4, dtype=torch.bool)
    assert not mine_hard_negatives(loss, all_positive, ~all_positive).any()


def test_infinite_loss_negatives_are_still_selected_first():
    loss = torch.tensor([[0.1, float("inf"), 0.2]])
    negative = torch.ones(1, 3, dtype=torch.bool)
    mined = mine_hard_negatives(loss, torch.tensor([[False, False, False]]), negative, 3.0, 1)
    assert mined.tolist() == [[False, True, False]]


def test_bad_ratio():
    with pytest.raises(ValueError, match="neg_pos_ratio >= 0"):
        mine_hard_negatives(torch.rand(1, 3), torch.zeros(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool), -1.0)
