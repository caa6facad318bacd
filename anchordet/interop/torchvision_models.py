"""Ours -> torchvision: ``to_torchvision`` builds a torchvision ``RetinaNet`` or ``SSD`` holding an
anchordet detector's weights, with the key mapping and class-channel layout of
``interop.torchvision`` (see its docstring for what is exact and where the two models differ)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from anchordet.errors import UserError
from anchordet.interop.torchvision import (_check_default_boxes, _mismatch_message, _our_to_tv_key, _scatter_classes,
                                           _tv_channels)


def to_torchvision(detector: nn.Module, category_ids: Sequence[int] | None = None, *,
                   min_size: int = 800, max_size: int = 1333) -> nn.Module:
    """A torchvision ``RetinaNet`` or ``SSD`` (eval mode) with our detector's weights.

    Args:
        detector: an anchordet RetinaNet built with torchvision's anchors (``anchor_offset=0``,
            ``anchor_round_base=True``, as ``from_torchvision`` configures it), or an SSD300 with
            torchvision's default boxes.
        category_ids: torchvision's label for each of our classes (default 1..K, label 0 being
            torchvision's background); torchvision gets max(category_ids) + 1 logits.
        min_size, max_size: torchvision RetinaNet's internal resize.
    Raises:
        UserError naming what torchvision cannot reproduce.
    """
    arch = _arch_of_ours(detector)
    labels = [int(c) for c in (category_ids if category_ids is not None else range(1, detector.num_classes + 1))]
    if len(labels) != detector.num_classes or len(set(labels)) != len(labels) or min(labels) < (arch == "ssd300_vgg16"):
        raise UserError(f"category_ids: need {detector.num_classes} distinct labels "
                         f">= {int(arch == 'ssd300_vgg16')}, got {labels}")
    num_tv_classes = max(labels) + 1
    if arch == "retinanet_resnet50_fpn":
        tv = _tv_retinanet(detector, num_tv_classes, min_size, max_size)
    else:
        tv = _tv_ssd(detector, num_tv_classes)
    layouts = detector.class_layouts()
    tv_state = tv.state_dict()
    tv_modules = dict(tv.named_modules())
    new, problems = {}, []
    for key, value in detector.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        tv_key = _our_to_tv_key(arch, key)
        if tv_key not in tv_state:
            problems.append(f"{key} -> {tv_key} (no such torchvision key)")
            continue
        value = value.detach().clone()
        if key in layouts:
            value = _scatter_classes(value, layouts[key].groups, _tv_channels(arch, labels), num_tv_classes,
                                     key.endswith("bias"))
        if key.endswith(".running_var"):
            our_eps = dict(detector.named_modules())[key[: -len(".running_var")]].eps
            value = value + our_eps - tv_modules[tv_key[: -len(".running_var")]].eps
        if value.shape != tv_state[tv_key].shape:
            problems.append(f"{key}: {tuple(value.shape)} vs torchvision {tv_key} {tuple(tv_state[tv_key].shape)}")
        new[tv_key] = value
    left = sorted(k for k in tv_state if k not in new and not k.endswith("num_batches_tracked"))
    if problems or left:
        raise UserError(_mismatch_message(f"{type(detector).__name__} -> torchvision {arch}", left, [], problems))
    tv.load_state_dict(new, strict=False, assign=True)  # assign: meta tensors are replaced, not copied into
    return tv.eval()


def _arch_of_ours(detector: nn.Module) -> str:
    from anchordet.detectors.retinanet import RetinaNet

    if isinstance(detector, RetinaNet):
        return "retinanet_resnet50_fpn"
    from anchordet.detectors.ssd import SSD

    if isinstance(detector, SSD):
        return "ssd300_vgg16"
    raise UserError(f"{type(detector).__name__}: only RetinaNet and SSD300 convert to torchvision")


def _tv_retinanet(detector: nn.Module, num_tv_classes: int, min_size: int, max_size: int):
    from torchvision.models import resnet
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops import FrozenBatchNorm2d
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    generator = detector.anchor_generator
    if generator.offset != 0.0 or not generator.round_base or generator.strides != (8, 16, 32, 64, 128):
        raise UserError("torchvision's AnchorGenerator puts rounded base anchors on cell corners at strides "
                         f"8..128; this model has offset {generator.offset}, round_base {generator.round_base}, "
                         f"strides {generator.strides}: build it with anchor_offset=0, anchor_round_base=True")
    if tuple(detector.box_coder.weights) != (1.0, 1.0, 1.0, 1.0):
        raise UserError(f"torchvision's RetinaNet decodes with weights (1, 1, 1, 1), not {detector.box_coder.weights}")
    if detector.backbone.conv1.out_channels != 64:
        raise UserError(f"torchvision's ResNet has width 64; this backbone has {detector.backbone.conv1.out_channels}")
    body = getattr(resnet, f"resnet{detector.backbone.depth}")(weights=None, norm_layer=FrozenBatchNorm2d)
    fpn = detector.fpn
    p6_in = fpn.out_channels if fpn.p6_from == "p5" else fpn.p6.in_channels
    if fpn.p6_from == "c5" and p6_in == fpn.out_channels:
        raise UserError("torchvision takes P6 from P5 whenever C5 has the FPN's width; this model reads C5")
    backbone = BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"}, list(detector.backbone.out_channels),
                               fpn.out_channels, extra_blocks=LastLevelP6P7(p6_in, fpn.out_channels))
    sizes = tuple(tuple(level) for level in generator.sizes_per_level)
    post = detector.postprocess
    tv = RetinaNet(backbone, num_tv_classes, min_size=min_size, max_size=max_size,
                   image_mean=detector.pixel_mean.tolist(), image_std=detector.pixel_std.tolist(),
                   anchor_generator=AnchorGenerator(sizes, (generator.aspect_ratios,) * len(sizes)),
                   score_thresh=post.score_thresh, nms_thresh=post.nms_thresh,
                   detections_per_img=post.max_detections, topk_candidates=post.topk_candidates)
    return tv


def _tv_ssd(detector: nn.Module, num_tv_classes: int):
    """torchvision's ``ssd300_vgg16`` builder, step by step, with VGG16 made on the meta device:
    SSD keeps only its ``features`` and every weight is overwritten, so allocating and
    initialising VGG's 138M parameters (the 102M of its classifier included) would be wasted."""
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD, _vgg_extractor
    from torchvision.models.vgg import VGG, cfgs, make_layers

    if detector.image_size != 300:
        raise UserError(f"torchvision has SSD300 only; this SSD takes {detector.image_size} px inputs")
    if tuple(detector.box_coder.weights) != (10.0, 10.0, 5.0, 5.0):
        raise UserError(f"torchvision's SSD decodes with weights (10, 10, 5, 5), not {detector.box_coder.weights}")
    with torch.device("meta"):
        vgg = VGG(make_layers(cfgs["D"]), init_weights=False)
    anchor_generator = DefaultBoxGenerator(  # ssd300_vgg16's
        [[2], [2, 3], [2, 3], [2, 3], [2], [2]], scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
        steps=[8, 16, 32, 64, 100, 300])
    post = detector.postprocess
    tv = SSD(_vgg_extractor(vgg, False, 4), anchor_generator, (300, 300), num_tv_classes,
             image_mean=detector.pixel_mean.tolist(), image_std=detector.pixel_std.tolist(),
             score_thresh=post.score_thresh, nms_thresh=post.nms_thresh,
             detections_per_img=post.max_detections, topk_candidates=post.topk_candidates)
    _check_default_boxes(detector, tv)
    return tv
