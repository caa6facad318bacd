"""RetinaNet (Lin et al. 2017; seeds 000 and 001): ResNet + FPN P3-P7, shared class and box
subnets, 9 anchors per location, sigmoid focal loss.

This file only wires blocks together; every number below is a default of a block's argument
with its source.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from anchordet.anchors.grid import GridAnchorGenerator, retinanet_anchor_sizes
from anchordet.coding.box_coder import BoxCoder
from anchordet.detectors.base import ClassLayout, DenseDetector
from anchordet.losses.box import box_regression_loss
from anchordet.losses.dense_targets import DenseTargetBuilder, DenseTargets
from anchordet.losses.focal import dense_focal_loss
from anchordet.matching.iou_matcher import IoUMatcher
from anchordet.postprocess.dense import DensePostprocess
from anchordet.structures.image_batch import IMAGENET_MEAN, IMAGENET_STD
from anchordet.structures.outputs import DenseOutputs


class RetinaNet(DenseDetector):
    """Args:
        backbone: images (B, 3, H, W) -> [C3, C4, C5].
        fpn: [C3, C4, C5] -> [P3, ..., P7].
        head: [P3, ..., P7] -> (per-level class logits (B, H_l*W_l*A, K),
            per-level box deltas (B, H_l*W_l*A, 4)), in the anchor generator's order.
        num_classes: K foreground classes (no background).
        anchor_generator: anchors of P3..P7 (Lin et al. Sec. 4: sizes 32..512, 3 scales x 3 ratios).
        matcher: >= 0.5 positive, < 0.4 negative (Lin et al. Sec. 4), low-quality matches on.
        box_loss: "smooth_l1" (beta 1/9, Detectron) or "l1" (torchvision).
        postprocess: 0.05 / top 1000 per level / NMS 0.5 / 100 detections (Lin et al. Sec. 5.1).
        size_divisible: inputs are padded to this multiple (the largest stride of C5).

    ``score_kind`` "sigmoid": one independent sigmoid per class (``DensePostprocess``). The
    forward / loss / predict skeleton is ``detectors.base.DenseDetector``'s.
    """

    score_kind = "sigmoid"
    network_parts = ("backbone", "fpn", "head")
    family = "retinanet"
    fixed_size = None

    def __init__(self, backbone: nn.Module, fpn: nn.Module, head: nn.Module, num_classes: int,
                 anchor_generator: GridAnchorGenerator | None = None,
                 box_coder: BoxCoder = BoxCoder(),
                 matcher: IoUMatcher = IoUMatcher(0.5, 0.4, low_quality="ties"),
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 box_loss: str = "smooth_l1", box_loss_beta: float = 1.0 / 9,
                 postprocess: DensePostprocess = DensePostprocess(0.05, 1000, 0.5, 100),
                 pixel_mean: Sequence[float] = IMAGENET_MEAN, pixel_std: Sequence[float] = IMAGENET_STD,
                 size_divisible: int = 32):
        super().__init__()
        self.backbone, self.fpn, self.head = backbone, fpn, head
        self.num_classes = num_classes
        self.anchor_generator = anchor_generator or GridAnchorGenerator(
            retinanet_anchor_sizes(), (0.5, 1.0, 2.0), (8, 16, 32, 64, 128))
        self.box_coder = box_coder
        self.target_builder = DenseTargetBuilder(matcher, box_coder)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.box_loss, self.box_loss_beta = box_loss, box_loss_beta
        self.postprocess = postprocess
        self.size_divisible = size_divisible
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std), persistent=False)

    def features(self, images: Tensor) -> list[Tensor]:
        return self.fpn(self.backbone(images))

    def feature_modules(self) -> list[nn.Module]:
        return [self.backbone, self.fpn]

    def anchors_generator(self) -> GridAnchorGenerator:
        return self.anchor_generator

    def anchors_for(self, feature_sizes, input_size, device=None) -> list[Tensor]:
        return self.anchor_generator.grid_anchors(feature_sizes, device=device)

    def dense_loss(self, out: DenseOutputs, dense: DenseTargets, normalizer: Tensor) -> dict[str, Tensor]:
        """Focal loss and box loss, each summed over the batch / ``normalizer`` (Lin et al. Sec. 3.3)."""
        loss_cls = dense_focal_loss(out.cls_logits, dense.gt_labels, dense.positive, dense.valid,
                                    self.focal_alpha, self.focal_gamma)
        loss_box = box_regression_loss(out.box_deltas, dense.box_targets, dense.positive,
                                       self.box_loss, self.box_loss_beta)
        return {"loss_cls": loss_cls / normalizer, "loss_box": loss_box / normalizer}

    def class_layouts(self) -> dict[str, ClassLayout]:
        """``head.cls_output``: (A * K) rows, anchor-major: row ``a * K + k``."""
        layout = ClassLayout(int(self.head.num_anchors), 0)
        return {key: layout for key in ("head.cls_output.weight", "head.cls_output.bias")}


def retinanet_resnet_fpn(depth: int, num_classes: int, *,
                         backbone_weights: str | None = None,
                         frozen_bn: bool = True,
                         trainable_layers: int = 3,
                         backbone_width: int = 64,
                         fpn_channels: int = 256,
                         p6_from: str = "c5",
                         head_channels: int = 256,
                         head_num_convs: int = 4,
                         head_norm: str | None = None,
                         backbone_zero_init_residual: bool = False,
                         anchor_base_sizes: Sequence[float] = (32, 64, 128, 256, 512),
                         anchor_octave_scales: Sequence[float] = (1.0, 2 ** (1 / 3), 2 ** (2 / 3)),
                         anchor_aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                         anchor_offset: float = 0.5,
                         anchor_sizes: Sequence[Sequence[float]] | None = None,
                         anchor_round_base: bool = False,
                         box_loss: str = "smooth_l1",
                         box_loss_beta: float = 1.0 / 9,
                         score_thresh: float = 0.05,
                         topk_candidates: int = 1000,
                         nms_thresh: float = 0.5,
                         max_detections: int = 100,
                         pixel_mean: Sequence[float] = IMAGENET_MEAN,
                         pixel_std: Sequence[float] = IMAGENET_STD) -> RetinaNet:
    """RetinaNet on ResNet-``depth`` + FPN P3-P7 with the paper's numbers as defaults.

    ``backbone_weights``: a path to a torchvision ResNet state dict (``.pth`` or
    ``.safetensors``), "imagenet" (torchvision's ImageNet weights from the torch hub cache, see
    ``anchordet.backbones.weights.resolve_backbone_weights``), or None / "none" for random
    initialisation.
    ``anchor_sizes``: per-level sizes that replace ``anchor_base_sizes`` x ``anchor_octave_scales``
    (torchvision truncates them to integers: ``TORCHVISION_RETINANET_ANCHOR_SIZES``).
    ``anchor_round_base``: round the centred base anchors to whole pixels, as torchvision.
    ``head_norm``: "gn" puts GroupNorm after every subnet conv (``heads.retina.RetinaHead``);
    ``backbone_zero_init_residual``: each residual block starts as the identity
    (``backbones.resnet.ResNet``). Both for training from scratch (the digits presets).
    """
    from anchordet.backbones.fpn import FPN
    from anchordet.backbones.resnet import ResNet
    from anchordet.backbones.weights import load_torchvision_weights, resolve_backbone_weights
    from anchordet.heads.retina import RetinaHead

    backbone = ResNet(depth, ("c3", "c4", "c5"), frozen_bn=frozen_bn, trainable_layers=trainable_layers,
                      width=backbone_width, zero_init_residual=backbone_zero_init_residual)
    weights_file = resolve_backbone_weights(backbone_weights, f"resnet{depth}")
    if weights_file:
        load_torchvision_weights(backbone, weights_file)
    sizes = anchor_sizes if anchor_sizes is not None else retinanet_anchor_sizes(anchor_base_sizes, anchor_octave_scales)
    anchors = GridAnchorGenerator(sizes, anchor_aspect_ratios, (8, 16, 32, 64, 128), offset=anchor_offset,
                                  round_base=anchor_round_base)
    return RetinaNet(
        backbone, FPN(backbone.out_channels, fpn_channels, p6_from),
        RetinaHead(fpn_channels, anchors.num_anchors_per_location, num_classes, head_channels, head_num_convs,
                   norm=head_norm),
        num_classes, anchors, box_loss=box_loss, box_loss_beta=box_loss_beta,
        postprocess=DensePostprocess(score_thresh, topk_candidates, nms_thresh, max_detections),
        pixel_mean=pixel_mean, pixel_std=pixel_std,
    )


def retinanet_resnet18_fpn(num_classes: int, **options) -> RetinaNet:
    return retinanet_resnet_fpn(18, num_classes, **options)


def retinanet_resnet34_fpn(num_classes: int, **options) -> RetinaNet:
    return retinanet_resnet_fpn(34, num_classes, **options)


def retinanet_resnet50_fpn(num_classes: int, **options) -> RetinaNet:
    return retinanet_resnet_fpn(50, num_classes, **options)


def retinanet_resnet101_fpn(num_classes: int, **options) -> RetinaNet:
    return retinanet_resnet_fpn(101, num_classes, **options)


def retinanet_resnet152_fpn(num_classes: int, **options) -> RetinaNet:
    return retinanet_resnet_fpn(152, num_classes, **options)
