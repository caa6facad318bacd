import math

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from anchordet.losses.focal import dense_focal_loss, sigmoid_focal_loss


def test_hand_worked_single_logit():
    # logit 0 -> p = 0.5. Positive: alpha (1 - p)^2 (-log p) = 0.25 * 0.25 * log 2.
    # Negative: (1 - alpha) p^2 (-log(1 - p)) = 0.75 * 0.25 * log 2.
    loss = sigmoid_focal_loss(torch.zeros(2, 1), torch.tensor([[1.0], [0.0]]))
    torch.testing.assert_close(loss, torch.tensor([[0.0625 * math.log(2)], [0.1875 * math.log(2)]]))


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (0.5, 0.0), (-1.0, 1.5)])
def test_matches_torchvision(alpha, gamma):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=g) * 3
    targets = (torch.rand(50, 7, generator=g) > 0.8).float()
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha, gamma),
                               tv_sigmoid_focal_loss(logits, targets, alpha, gamma))


def test_gamma_zero_alpha_off_is_bce():
    logits = torch.tensor([[2.0, -1.0]])
    targets = torch.tensor([[1.0, 0.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0), expected)


def test_dense_focal_loss_skips_ignored_and_uses_one_hot():
    logits = torch.zeros(1, 3, 2)
    gt_labels = torch.tensor([[1, 0, 0]])
    positive = torch.tensor([[True, False, False]])
    valid = torch.tensor([[True, True, False]])
    # anchor 0: positive for class 1 (one positive + one negative element), anchor 1: two negatives.
    pos, neg = 0.0625 * math.log(2), 0.1875 * math.log(2)
    loss = dense_focal_loss(logits, gt_labels, positive, valid)
    torch.testing.assert_close(loss, torch.tensor(pos + neg + 2 * neg))


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.0), (0.5, 1.5)])
def test_dense_focal_loss_matches_reference_value_and_gradient(alpha, gamma):
    """The one-node version against the elementwise reference (one-hot, valid rows; float32),
    with positives, negatives and ignored anchors; the written-out gradient also against
    torch.autograd.gradcheck's finite differences in float64."""
    from anchordet.losses.focal import dense_focal_loss_reference

    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 30, 4, generator=gen) * 3).requires_grad_()
    gt_labels = torch.randint(0, 4, (2, 30), generator=gen)
    positive = torch.rand(2, 30, generator=gen) < 0.3
    valid = positive | (torch.rand(2, 30, generator=gen) < 0.7)
    got = dense_focal_loss(logits, gt_labels, positive, valid, alpha, gamma)
    expected = dense_focal_loss_reference(logits, gt_labels, positive, valid, alpha, gamma)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-6)
    (g_got,) = torch.autograd.grad(got, logits)
    (g_exp,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(g_got, g_exp, atol=1e-6, rtol=1e-5)
    assert torch.all(g_got[~valid] == 0) and torch.any(g_got[valid] != 0)  # ignored anchors: no gradient
    small = logits.detach()[:, :6].double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: dense_focal_loss(x, gt_labels[:, :6], positive[:, :6], valid[:, :6], alpha, gamma), (small,))
