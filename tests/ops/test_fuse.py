import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from anchordet.ops.fuse import bn_affine, can_fold, conv_bn, fold_batch_norms, fold_conv_bn


def _bn(kind: str, channels: int) -> nn.Module:
    bn = FrozenBatchNorm2d(channels, eps=1e-5) if kind == "frozen" else nn.BatchNorm2d(channels)
    with torch.no_grad():  # non-trivial statistics so a wrong fold shows
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return bn if kind == "frozen" else bn.eval()


def test_bn_affine_hand_worked():
    bn = FrozenBatchNorm2d(1, eps=0.0)
    bn.weight.fill_(2.0), bn.bias.fill_(1.0), bn.running_mean.fill_(3.0), bn.running_var.fill_(4.0)
    scale, shift = bn_affine(bn)
    # (x - 3) / sqrt(4) * 2 + 1 = x * 1 + (1 - 3 * 1)
    assert scale.item() == 2.0 / 2.0 and shift.item() == 1.0 - 3.0 * 1.0


@pytest.mark.parametrize("kind", ["frozen", "eval"])
@pytest.mark.parametrize("bias,stride,groups", [(False, 1, 1), (True, 2, 1), (False, 1, 2)])
def test_conv_bn_equals_the_two_modules_with_gradients(kind, bias, stride, groups):
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, stride, 1, bias=bias, groups=groups), _bn(kind, 6)
    x = torch.randn(2, 4, 9, 11, requires_grad=True)
    expected = bn(conv(x))
    grads_expected = torch.autograd.grad(expected.square().sum(), [x, conv.weight])
    calls = []
    bn.register_forward_hook(lambda *args: calls.append(1))
    got = conv_bn(x, conv, bn)
    assert calls == []  # folded: the batch norm module itself never runs
    grads = torch.autograd.grad(got.square().sum(), [x, conv.weight])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for g, e in zip(grads, grads_expected):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


def test_training_batchnorm_is_not_folded():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 1), nn.BatchNorm2d(5).train()
    assert not can_fold(bn)
    x = torch.randn(4, 3, 6, 6)
    out = conv_bn(x, conv, bn)
    # batch statistics: every channel has mean 0 over (B, H, W), which a fold could not give
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-5, rtol=0)
    assert bn.num_batches_tracked.item() == 1
    with pytest.raises(ValueError, match="training"):
        fold_conv_bn(conv, bn)


@pytest.mark.parametrize("bias", [False, True])
def test_fold_conv_bn_module(bias):
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 4, 3, 1, 1, bias=bias), _bn("frozen", 4)
    fused = fold_conv_bn(conv, bn)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), bn(conv(x)), atol=1e-5, rtol=1e-5)
    assert fused.bias is not None and fused.weight.requires_grad


def test_fold_batch_norms_needs_a_folding_module():
    with pytest.raises(ValueError, match="Sequential has no module that folds"):
        fold_batch_norms(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)))
