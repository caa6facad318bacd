import pytest
import torch
import torch.nn.functional as F

from anchordet.losses.box import box_regression_loss, smooth_l1


def test_smooth_l1_hand_worked():
    x = torch.tensor([0.05, 0.5, -2.0])
    # beta 1/9: |0.05| < 1/9 -> 0.5 * 0.0025 * 9; 0.5 -> 0.5 - 1/18; 2 -> 2 - 1/18
    expected = torch.tensor([0.5 * 0.0025 * 9, 0.5 - 1 / 18, 2 - 1 / 18])
    torch.testing.assert_close(smooth_l1(x, torch.zeros(3), 1 / 9), expected)


@pytest.mark.parametrize("beta", [1.0, 1 / 9])
def test_matches_torch(beta):
    a, b = torch.randn(40), torch.randn(40)
    torch.testing.assert_close(smooth_l1(a, b, beta), F.smooth_l1_loss(a, b, beta=beta, reduction="none"))


def test_positive_mask_and_l1():
    pred = torch.tensor([[[1.0, 0, 0, 0], [5.0, 5, 5, 5]]])
    target = torch.zeros(1, 2, 4)
    positive = torch.tensor([[True, False]])
    assert box_regression_loss(pred, target, positive, "l1").item() == 1.0
    assert box_regression_loss(pred, target, positive, "smooth_l1", beta=1.0).item() == 0.5


def test_no_positive_is_zero_with_gradient():
    pred = torch.randn(1, 3, 4, requires_grad=True)
    loss = box_regression_loss(pred, torch.zeros(1, 3, 4), torch.zeros(1, 3, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad.abs().sum() == 0


def test_unknown_kind():
    with pytest.raises(ValueError, match="giou"):
        box_regression_loss(torch.zeros(1, 4), torch.zeros(1, 4), torch.ones(1, dtype=torch.bool), "giou")
