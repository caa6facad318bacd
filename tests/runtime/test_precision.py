"""Precision: resolution with its one-line fallback, autocast around the network parts only, and
the float32 parts (anchors, losses, box decoding, NMS) staying float32 under bf16."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from anchordet.data.shapes import all_found, make_scenes
from anchordet.detectors.faster_rcnn import faster_rcnn_resnet18_c4
from anchordet.detectors.retinanet import retinanet_resnet18_fpn
from anchordet.detectors.ssd import ssd_vgg16
from anchordet.runtime import precision as P
from anchordet.runtime.precision import Precision, apply_precision, resolve_precision, to_float32
from anchordet.structures.boxes import box_iou
from helpers import assert_overfits

BF16 = Precision("bf16", "cpu", "bf16")  # forced: CPU autocast runs (emulated) on any CPU
RETINA_TINY = dict(backbone_width=16, fpn_channels=32, head_channels=32, head_num_convs=2,
                   anchor_base_sizes=(16, 32, 64, 128, 256), trainable_layers=5, frozen_bn=False)


def tiny_retinanet(num_classes: int = 3):
    torch.manual_seed(0)
    return retinanet_resnet18_fpn(num_classes, **RETINA_TINY)


# ------------------------------------------------------------------------------ resolution


def test_fp32_is_the_default_and_runs_as_is():
    lines = []
    resolved = resolve_precision("fp32", "cpu", say=lines.append)
    assert resolved == Precision() and not resolved.enabled and resolved.dtype is None and lines == []


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="'fp8' is not one of fp32, bf16, fp16, auto"):
        resolve_precision("fp8", "cpu")


@pytest.mark.parametrize("flags,expected", [({"avx512_bf16"}, "bf16"), ({"amx_bf16", "amx_tile"}, "bf16"),
                                            ({"avx2", "avx512f", "fma"}, "fp32")])
def test_cpu_bf16_only_where_the_cpu_has_it(monkeypatch, flags, expected):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset(flags))
    lines = []
    resolved = resolve_precision("bf16", "cpu", say=lines.append)
    assert resolved.name == expected and resolved.requested == "bf16"
    if expected == "fp32":  # one line, saying why
        assert lines == [resolved.note] and "no native bf16" in lines[0] and "running in fp32" in lines[0]
    else:
        assert lines == [] and resolved.dtype is torch.bfloat16


@pytest.mark.parametrize("flags,expected", [({"avx512_bf16"}, "bf16"), ({"amx_bf16"}, "bf16"), ({"avx2"}, "fp32")])
def test_auto_is_bf16_where_native_else_fp32_silently(monkeypatch, flags, expected):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset(flags))
    lines = []
    resolved = resolve_precision("auto", "cpu", say=lines.append)
    assert (resolved.name, resolved.requested, resolved.note, lines) == (expected, "auto", None, [])
    assert resolve_precision("auto", "mps", say=lines.append).name == "fp32" and lines == []


def test_fp16_on_cpu_falls_back_with_one_line():
    lines = []
    resolved = resolve_precision("fp16", "cpu", say=lines.append)
    assert resolved.name == "fp32" and len(lines) == 1 and "CUDA" in lines[0]
    assert resolved.grad_scaler() is None


def test_this_machine_is_detected_from_its_flags():
    # whatever this CPU is: bf16 runs exactly when /proc/cpuinfo lists a native bf16 flag
    native = bool({"avx512_bf16", "amx_bf16"} & P.cpu_flags()) and torch.backends.mkldnn.is_available()
    assert resolve_precision("bf16", "cpu", say=None).name == ("bf16" if native else "fp32")


def test_to_float32_maps_nested_outputs():
    from anchordet.heads.roi_box import RoIHeadOutputs

    value = ([torch.zeros(2, dtype=torch.bfloat16)], RoIHeadOutputs(torch.zeros(1, dtype=torch.float16),
                                                                       torch.zeros(1, dtype=torch.int64)), {"a": 1})
    out = to_float32(value)
    assert out[0][0].dtype == torch.float32 and isinstance(out[1], RoIHeadOutputs)
    assert out[1].class_logits.dtype == torch.float32 and out[1].box_deltas.dtype == torch.int64 and out[2] == {"a": 1}


# ----------------------------------------------------------------- autocast around the network


def _conv_dtypes(model: nn.Module) -> list[torch.dtype]:
    """Records the output dtype of every Conv2d of ``model`` during the next calls."""
    seen = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    return seen


def test_network_runs_in_bf16_and_its_outputs_are_float32():
    model = apply_precision(tiny_retinanet().eval(), BF16)
    convs = _conv_dtypes(model)
    with torch.no_grad():  # 128 px: P7's input is 2 x 2 (at 64 px it is 1 x 1 and runs in fp32, below)
        out = model(torch.rand(2, 3, 128, 128))
    assert convs and set(convs) == {torch.bfloat16}  # the network did run in bf16
    assert out.cls_logits.dtype == out.box_deltas.dtype == out.anchors.dtype == torch.float32
    assert not torch.is_autocast_enabled("cpu")  # nothing leaks past the network


def test_losses_and_postprocessing_run_in_float32_without_autocast(monkeypatch):
    import anchordet.detectors.retinanet as retina_module
    from anchordet.postprocess.dense import DensePostprocess

    seen = []

    def spy(name, function):
        def wrapped(*args, **kwargs):
            tensors = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
            seen.append((name, torch.is_autocast_enabled("cpu"), {t.dtype for t in tensors}))
            result = function(*args, **kwargs)
            return result
        return wrapped

    monkeypatch.setattr(retina_module, "dense_focal_loss", spy("focal", retina_module.dense_focal_loss))
    monkeypatch.setattr(retina_module, "box_regression_loss", spy("box", retina_module.box_regression_loss))
    monkeypatch.setattr(DensePostprocess, "sigmoid", spy("postprocess", DensePostprocess.sigmoid))
    model = apply_precision(tiny_retinanet(), BF16)
    images, targets = make_scenes(2, 64, min_side=16, max_side=30)
    losses = model.loss(images, targets)
    detections = model.eval().predict(images)
    assert [name for name, *_ in seen] == ["focal", "box", "postprocess"]
    for name, autocast_on, dtypes in seen:
        assert not autocast_on and dtypes == {torch.float32}, name
    assert all(v.dtype == torch.float32 for v in losses.values())
    assert all(d.boxes.dtype == d.scores.dtype == torch.float32 for d in detections)


def test_loss_equals_float32_losses_of_the_bf16_network_outputs():
    """The bf16 model's loss is the fp32 loss computed on its (float32-cast) network outputs:
    only the network is in bf16."""
    model = apply_precision(tiny_retinanet(), BF16)
    images, targets = make_scenes(2, 64, min_side=16, max_side=30)
    losses = model.loss(images, targets)
    reference = tiny_retinanet()
    outputs = model(torch.stack(images))  # the same bf16 network outputs, as float32
    reference.forward = lambda x: outputs  # fp32 losses on exactly those outputs
    expected = reference.loss(images, targets)
    for key in losses:
        torch.testing.assert_close(losses[key], expected[key], rtol=1e-6, atol=0)
    # and they differ from the fp32 network's (bf16 changed the network, not nothing)
    fp32 = tiny_retinanet().loss(images, targets)
    assert not torch.equal(fp32["loss_cls"], losses["loss_cls"])


def test_faster_rcnn_parts_and_roi_pooling_inputs_are_float32(monkeypatch):
    torch.manual_seed(0)
    model = faster_rcnn_resnet18_c4(3, backbone_width=8, frozen_bn=False, trainable_layers=5, anchor_sizes=(16, 32, 64),
                                    rpn_allowed_border=None, rpn_min_size=0.0, rpn_post_nms_top_n_test=20,
                                    roi_output_size=6, roi_pool="align")
    apply_precision(model, BF16)
    from anchordet.ops.roi_pool import RoIPooler

    pooled_inputs = []
    for name in ("__call__", "pool_flat"):  # every way the detector pools
        original = getattr(RoIPooler, name)

        def spy(self, features, *args, original=original):
            pooled_inputs.append((features.dtype, torch.is_autocast_enabled("cpu")))
            return original(self, features, *args)

        monkeypatch.setattr(RoIPooler, name, spy)
    convs = _conv_dtypes(model)
    images, targets = make_scenes(2, 64, min_side=16, max_side=30)
    losses = model.loss(images, targets)
    model.eval().predict(images)
    assert set(convs) == {torch.bfloat16} and pooled_inputs and set(pooled_inputs) == {(torch.float32, False)}
    assert all(v.dtype == torch.float32 for v in losses.values())


def test_ssd_under_bf16():
    torch.manual_seed(0)
    model = ssd_vgg16(3, image_size=96, width=8, extra_layers=((256, 512, 3, 2, 1), (128, 256, 3, 2, 1)),
                      steps=(8, 16, 32, 48), min_sizes=(16, 28, 44, 60), max_sizes=(28, 44, 60, 80),
                      aspect_ratios=((2,), (2,), (2,), (2,)))
    apply_precision(model, BF16)
    convs = _conv_dtypes(model)
    images, targets = make_scenes(2, 96)
    losses = model.loss(images, targets)
    assert set(convs) == {torch.bfloat16} and all(v.dtype == torch.float32 for v in losses.values())


def test_fp32_removes_the_hooks_and_copies_keep_them():
    model = apply_precision(tiny_retinanet().eval(), BF16)
    copied = copy.deepcopy(model)
    apply_precision(model, Precision())
    plain, copied_convs = _conv_dtypes(model), _conv_dtypes(copied)
    with torch.no_grad():
        model(torch.rand(1, 3, 128, 128))
        copied(torch.rand(1, 3, 128, 128))
    assert set(plain) == {torch.float32} and set(copied_convs) == {torch.bfloat16}
    assert set(model.state_dict()) == set(tiny_retinanet().state_dict())  # keys unchanged


def test_autocast_does_not_leak_when_the_network_raises():
    model = apply_precision(tiny_retinanet().eval(), BF16)
    with pytest.raises(RuntimeError):
        model.backbone(torch.rand(1, 4, 64, 64))  # 4 channels: the first conv raises
    assert not torch.is_autocast_enabled("cpu")


def test_model_without_network_parts_is_refused():
    with pytest.raises(ValueError, match="none of the network parts"):
        apply_precision(nn.Linear(2, 2), BF16)


# -------------------------------------------------------------------- bf16 against fp32 detections


@pytest.fixture(scope="module")
def trained_tiny():
    """A tiny RetinaNet trained in fp32 until it finds every box of 4 scenes."""
    model = tiny_retinanet()
    images, targets = make_scenes(4, 96)
    assert_overfits(model, images, targets, max_steps=300, check_every=20)
    return model.eval(), images, targets


def test_bf16_detections_close_to_fp32(trained_tiny):
    """The fp32 model's 10 best detections per image are among the bf16 model's (which keeps
    every detection down to the 0.05 threshold): same label, IoU >= 0.9, score within 0.02."""
    model, images, targets = trained_tiny
    fp32 = model.predict(images)
    bf16 = apply_precision(copy.deepcopy(model), BF16).predict(images)
    assert all_found(fp32, targets) and all_found(bf16, targets)
    for a, b in zip(fp32, bf16):
        assert len(a) >= 10
        for box, score, label in zip(a.boxes[:10], a.scores[:10], a.labels[:10]):
            iou = box_iou(box[None], b.boxes)[0]
            match = (b.labels == label) & (iou >= 0.9) & ((b.scores - score).abs() <= 0.02)
            assert match.any(), (box.tolist(), float(score))


def test_strided_convs_on_one_pixel_wide_inputs_run_in_float32():
    """oneDNN's bf16 weight gradient of a 3x3 stride-2 conv on a one-pixel-wide input is garbage
    (up to 1e37, another value on every call; torch 2.14.1, Intel Xeon AMX). At 64 px RetinaNet's
    P6 is 1x1, so P7's conv meets it: under bf16 that conv runs in float32, so its gradient is
    the fp32 model's, the same on every call, while P6's (a 2x2 input: bf16) still differs."""
    model = tiny_retinanet()
    scenes, targets = make_scenes(2, 64, max_boxes=2, min_side=12, max_side=30, seed=0)
    images = torch.stack(scenes)

    def p7_gradients(precision):
        apply_precision(model, precision)
        grads = []
        for extra in range(3):
            _ = [torch.empty(1000 * extra + 1) for _ in range(extra)]  # other allocations each call
            model.zero_grad()
            sum(model.loss(images, targets).values()).backward()
            grads.append((model.fpn.p7.weight.grad.clone(), model.fpn.p6.weight.grad.clone()))
        return grads

    fp32 = p7_gradients(Precision())
    bf16 = p7_gradients(BF16)
    assert all(torch.equal(p7, bf16[0][0]) for p7, _ in bf16)
    assert bool(torch.isfinite(bf16[0][0]).all())
    torch.testing.assert_close(bf16[0][0], fp32[0][0], rtol=0.05, atol=0.05 * float(fp32[0][0].abs().max()))
    assert not torch.equal(bf16[0][1], fp32[0][1])  # the guard is for one-pixel inputs only
