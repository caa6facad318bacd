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


def _assert_same_predictions(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert len(g) == len(e) > 0 and torch.equal(g.labels, e.labels)
        torch.testing.assert_close(g.scores, e.scores, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(g.boxes, e.boxes, atol=1e-3, rtol=1e-4)


def _tiny_detectors():
    from anchordet.detectors.faster_rcnn import faster_rcnn_resnet18_c4
    from anchordet.detectors.retinanet import retinanet_resnet_fpn
    from anchordet.detectors.ssd import ssd_vgg16

    torch.manual_seed(0)
    retina = retinanet_resnet_fpn(18, 3, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=2)
    with torch.no_grad():  # well-spread scores around the 0.05 threshold (no near-ties), boxes off the anchors
        retina.head.cls_output.weight.normal_(0, 0.5)
        retina.head.cls_output.bias.fill_(-3.0)
        retina.head.box_output.weight.normal_(0, 0.01)
    ssd = ssd_vgg16(3, image_size=96, width=8, extra_layers=((256, 512, 3, 2, 1), (128, 256, 3, 2, 1)),
                    steps=(8, 16, 32, 48), min_sizes=(16, 28, 44, 60), max_sizes=(28, 44, 60, 80),
                    aspect_ratios=((2,), (2,), (2,), (2,)))
    frcnn = faster_rcnn_resnet18_c4(3, backbone_width=8, anchor_sizes=(16, 32, 64), roi_pool="align",
                                    roi_output_size=6, rpn_min_size=0.0, rpn_allowed_border=None)
    return [("retinanet", retina, [(96, 128), (64, 160)]), ("ssd", ssd, [(96, 96), (96, 96)]),
            ("frcnn", frcnn, [(96, 128), (80, 112)])]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_optimize_for_cpu_inference_same_outputs_any_size(index):
    """The traced, frozen parts give eager's raw outputs and detections, at the traced size and
    at another one; the original model is left eager."""
    from anchordet.ops.fuse import optimize_for_cpu_inference

    name, model, sizes = _tiny_detectors()[index]
    model.eval()
    example = torch.rand(2, 3, *sizes[0])
    fast = optimize_for_cpu_inference(model, example)
    assert isinstance(fast.backbone, torch.jit.ScriptModule) and not isinstance(model.backbone, torch.jit.ScriptModule)
    for size in sizes:
        images = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(size[1]))
        with torch.no_grad():
            for g, e in zip(fast(images), model(images)):
                torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)
        _assert_same_predictions(fast.predict(images), model.predict(images))
