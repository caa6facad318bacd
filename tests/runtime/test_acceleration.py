"""channels_last (same detections and gradients as NCHW within float rounding), the per-family
defaults, BN folding for inference and the CUDA settings."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from anchordet.config.schema import DataConfig
from anchordet.data.shapes import make_scenes
from anchordet.detectors.faster_rcnn import faster_rcnn_resnet18_c4
from anchordet.detectors.retinanet import retinanet_resnet18_fpn
from anchordet.detectors.ssd import ssd_vgg16
from anchordet.runtime import acceleration as A
from anchordet.runtime.precision import precision_of


def retinanet():
    torch.manual_seed(0)
    model = retinanet_resnet18_fpn(3, backbone_width=16, fpn_channels=32, head_channels=32, head_num_convs=2,
                                   anchor_base_sizes=(16, 32, 64, 128, 256), trainable_layers=5, frozen_bn=False)
    with torch.no_grad():  # varied scores above the 0.05 threshold (few ties), boxes away from the anchors
        for conv in model.head.modules():
            if isinstance(conv, nn.Conv2d):
                conv.weight.normal_(0, 0.1)
        model.head.cls_output.bias.normal_(-2.0, 0.5)
        model.head.box_output.weight.normal_(0, 0.01)
    return model


def ssd():
    torch.manual_seed(0)
    return ssd_vgg16(3, image_size=96, width=8, extra_layers=((256, 512, 3, 2, 1), (128, 256, 3, 2, 1)),
                     steps=(8, 16, 32, 48), min_sizes=(16, 28, 44, 60), max_sizes=(28, 44, 60, 80),
                     aspect_ratios=((2,), (2,), (2,), (2,)))


def faster_rcnn():
    torch.manual_seed(0)
    return faster_rcnn_resnet18_c4(3, backbone_width=8, frozen_bn=False, trainable_layers=5, anchor_sizes=(16, 32, 64),
                                   rpn_allowed_border=None, rpn_min_size=0.0, rpn_post_nms_top_n_test=50,
                                   roi_output_size=6, roi_pool="align")


FAMILIES = {"retinanet": retinanet, "ssd": ssd, "faster_rcnn": faster_rcnn}


def assert_same_detections(expected, got, box_tol=1e-3, score_tol=1e-5, min_count=10):
    """Each of ``expected``'s detections pairs with one of ``got``'s: same label, score within
    ``score_tol``, box within ``box_tol`` pixels (order may differ among near-ties)."""
    for a, b in zip(expected, got):
        assert len(a.boxes) == len(b.boxes) >= min_count
        free = torch.ones(len(b.boxes), dtype=torch.bool)
        for box, score, label in zip(a.boxes, a.scores, a.labels):
            close = (free & (b.labels == label) & ((b.scores - score).abs() <= score_tol)
                     & ((b.boxes - box).abs().amax(dim=1) <= box_tol))
            assert close.any(), (label.item(), box.tolist(), score.item())
            free[torch.nonzero(close)[0, 0]] = False


@pytest.mark.parametrize("family", list(FAMILIES))
def test_channels_last_detections_equal_nchw(family):
    model = FAMILIES[family]().eval()
    fast = A.use_channels_last(copy.deepcopy(model), True)
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    images, _ = make_scenes(2, 96)
    assert_same_detections(model.predict(images), fast.predict(images))


def _losses_and_gradients(model, images, targets, family):
    generator = {"generator": torch.Generator().manual_seed(0)} if family == "faster_rcnn" else {}
    losses = model.loss(images, targets, **generator)
    sum(losses.values()).backward()
    return losses, [p.grad for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_channels_last_losses_equal_nchw(family):
    model = FAMILIES[family]()
    fast = A.use_channels_last(copy.deepcopy(model), True)
    images, targets = make_scenes(2, 96)
    losses, _ = _losses_and_gradients(model, images, targets, family)
    fast_losses, _ = _losses_and_gradients(fast, images, targets, family)
    for key in losses:
        torch.testing.assert_close(fast_losses[key], losses[key], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_channels_last_gradients_equal_nchw_in_float64(family):
    """Gradients in float64, so that a layout bug (a view that assumes NCHW) cannot hide behind
    rounding: in float32 the trainable BNs of the small RoI maps cancel digits (1e-3 of the norm)."""
    model = FAMILIES[family]().double()
    fast = A.use_channels_last(copy.deepcopy(model), True)
    images, targets = make_scenes(2, 96)
    images = [image.double() for image in images]
    _, expected = _losses_and_gradients(model, images, targets, family)
    _, got = _losses_and_gradients(fast, images, targets, family)
    assert len(got) == len(expected) > 10
    for g, e in zip(got, expected):
        assert (g - e).norm() <= 1e-10 * e.norm()


def test_parameters_stay_the_same_objects():
    model = retinanet()
    before = [id(p) for p in model.parameters()]
    A.use_channels_last(model, True)
    assert [id(p) for p in model.parameters()] == before
    A.use_channels_last(model, False)
    assert all(p.is_contiguous() for p in model.parameters())


def test_auto_follows_the_measured_table(monkeypatch):
    model = retinanet()
    assert A.resolve_channels_last(True, model, "cpu") is True and A.resolve_channels_last(False, model, "cpu") is False
    monkeypatch.setitem(A.CHANNELS_LAST_FASTER, "cpu", {"retinanet": False, "ssd": True})
    assert A.resolve_channels_last("auto", model, "cpu") is False
    assert A.resolve_channels_last("auto", ssd(), "cpu") is True
    assert A.resolve_channels_last("auto", nn.Conv2d(1, 1, 1), "cpu") is False  # never measured: off


def test_inference_set_up_folds_bn_where_it_can():
    model = A.accelerate_for_inference(retinanet().eval(), "cpu")
    assert model.backbone.fold_bn and all(b.fold_bn for b in model.backbone.layer1)
    assert precision_of(model).name == "fp32"
    assert not A.can_fold_bn(ssd())  # VGG: nothing to fold, nothing done
    A.accelerate_for_inference(ssd().eval(), "cpu", fold_bn=True)
    plain = A.accelerate_for_inference(retinanet().eval(), "cpu", channels_last=False, fold_bn=False)
    assert not plain.backbone.fold_bn and plain.backbone.conv1.weight.is_contiguous()


def test_folded_channels_last_inference_equals_the_plain_model():
    model = retinanet().eval()
    images, _ = make_scenes(2, 96)
    fast = A.accelerate_for_inference(copy.deepcopy(model), "cpu")
    assert_same_detections(model.predict(images), fast.predict(images))


def test_training_set_up_resolves_precision_with_its_line(monkeypatch):
    from anchordet.runtime import precision as P

    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx2"}))
    lines = []
    model = retinanet()
    resolved = A.accelerate_for_training(model, torch.device("cpu"), "bf16", "auto", say=lines.append)
    assert resolved.name == "fp32" and len(lines) == 1
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_fixed_input_size_and_cudnn_benchmark_only_on_cuda():
    assert A.fixed_input_size(DataConfig(train_transform="fixed"))
    assert A.fixed_input_size(DataConfig(dataset="digits", min_size=256, max_size=256))
    assert not A.fixed_input_size(DataConfig(dataset="coco.yaml", min_size=800, max_size=1333))
    assert not A.fixed_input_size(DataConfig(dataset="digits", min_size=(192, 256), max_size=256))  # multi-scale
    before = torch.backends.cudnn.benchmark
    A.configure_cuda(torch.device("cpu"), True)
    assert torch.backends.cudnn.benchmark == before


def test_training_stays_nchw_where_onednn_would_crash():
    """A width-8 ResNet's layer2 downsample (1x1, stride 2, 8 -> 16 channels) aborts the process
    in its channels_last fp32 weight gradient (torch 2.14.1, CPU): training keeps such models NCHW
    (silently for auto, with a line for an explicit true); inference is not affected."""
    small = faster_rcnn()  # backbone_width=8
    assert "backbone.layer2.0.downsample.0" in A.nhwc_backward_crashing_convs(small)
    lines = []
    A.accelerate_for_training(small, torch.device("cpu"), channels_last="auto", say=lines.append)
    assert small.backbone.conv1.weight.is_contiguous() and lines == []
    A.accelerate_for_training(small, torch.device("cpu"), channels_last=True, say=lines.append)
    assert small.backbone.conv1.weight.is_contiguous() and len(lines) == 1 and "layer2.0.downsample.0" in lines[0]
    assert A.nhwc_backward_crashing_convs(retinanet()) == []  # width 16: 16 -> 32 channels is fine
    inference = A.accelerate_for_inference(faster_rcnn().eval(), "cpu")
    assert inference.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_auto_keeps_narrow_resnets_contiguous_for_cpu_training():
    """The oneDNN NHWC backward of a 1x1 stride-2 conv with < 16 input channels segfaulted here
    (torch 2.14.1, Intel Xeon AMX): "auto" keeps such models contiguous for CPU training only."""
    narrow = retinanet_resnet18_fpn(num_classes=3, backbone_width=8, fpn_channels=16, head_channels=16)
    wide = retinanet_resnet18_fpn(num_classes=3, backbone_width=16, fpn_channels=16, head_channels=16)
    assert A.nhwc_backward_crashing_convs(narrow) and not A.nhwc_backward_crashing_convs(wide)
    assert A.resolve_channels_last("auto", narrow, "cpu", training=True) is False
    assert A.resolve_channels_last("auto", narrow, "cpu") is A.CHANNELS_LAST_FASTER["cpu"]["retinanet"]
    assert A.resolve_channels_last("auto", wide, "cpu", training=True) is A.CHANNELS_LAST_FASTER["cpu"]["retinanet"]
    assert A.resolve_channels_last("auto", narrow, "cuda", training=True) is A.CHANNELS_LAST_FASTER["cuda"]["retinanet"]
