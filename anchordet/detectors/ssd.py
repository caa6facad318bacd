"""SSD (Liu et al. 2016; seed 002): VGG16 base + extra layers, a multibox head on 6 (SSD300) or
7 (SSD512) source maps, default boxes, softmax over K + 1 classes, hard negative mining.

This file only wires blocks together; every number below is a default of a block's argument
with its source.

Inputs are square images of a fixed size S (300 or 512): resizing is the data pipeline's job
(docs/design.md contract 4), so ``forward``, ``loss`` and ``predict`` reject any other size (``fixed_size``; ``size_divisible``
1: the collate pads nothing).
Normalisation: ImageNet mean / std on [0, 1] pixels (torchvision's ImageNet VGG16 weights).
torchvision's ssd300_vgg16 instead feeds 0..255 pixels minus a mean (``image_mean``
(0.48235, 0.45882, 0.40784), ``image_std`` 1/255 on [0, 1] inputs): give those as
``pixel_mean`` / ``pixel_std`` to run its converted weights.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from anchordet.anchors.ssd import SSDDefaultBoxes, paper_box_sizes
from anchordet.coding.box_coder import SSD_BOX_CODER, BoxCoder
from anchordet.detectors.base import ClassLayout, DenseDetector
from anchordet.losses.dense_targets import DenseTargetBuilder, DenseTargets
from anchordet.losses.multibox import multibox_loss
from anchordet.matching.iou_matcher import IoUMatcher
from anchordet.postprocess.dense import DensePostprocess
from anchordet.structures.image_batch import IMAGENET_MEAN, IMAGENET_STD
from anchordet.structures.outputs import DenseOutputs


class SSD(DenseDetector):
    """Args:
        backbone: images (B, 3, S, S) -> source maps (``SSDVGG16``).
        head: source maps -> (per-level logits (B, H_l*W_l*A_l, K + 1), per-level deltas
            (B, H_l*W_l*A_l, 4)), in the default boxes' order (``SSDHead``).
        num_classes: K foreground classes; the background logit is index K.
        default_boxes: the default box generator, one level per source map.
        image_size: S, the side of the square inputs (``fixed_size``: nothing is padded).
        box_coder: variances 0.1 / 0.2 = weights (10, 10, 5, 5) (Liu et al. Eq. 2, seed 002).
        matcher: each gt's best default box, then every box with IoU >= 0.5 (Sec. 2.2).
        neg_pos_ratio / min_negatives: hard negative mining (see ``mine_hard_negatives``).
        box_loss_beta: smooth L1 beta (1.0).
        postprocess: softmax, score > 0.01, NMS 0.45, 200 per image (seed 002's Detect);
            400 candidates per class before NMS (torchvision).

    ``score_kind`` "softmax": one softmax over the K + 1 logits (``DensePostprocess``). The
    forward / loss / predict skeleton is ``detectors.base.DenseDetector``'s.
    """

    score_kind = "softmax"
    network_parts = ("backbone", "head")
    family = "ssd"
    size_divisible = 1  # a fixed size: the data pipeline resizes to it, nothing is padded

    def __init__(self, backbone: nn.Module, head: nn.Module, num_classes: int, default_boxes: SSDDefaultBoxes,
                 image_size: int, box_coder: BoxCoder = SSD_BOX_CODER,
                 matcher: IoUMatcher = IoUMatcher(0.5, 0.5, low_quality="force"),
                 neg_pos_ratio: float = 3.0, min_negatives: int = 3, box_loss_beta: float = 1.0,
                 postprocess: DensePostprocess = DensePostprocess(0.01, 400, 0.45, 200),
                 pixel_mean: Sequence[float] = IMAGENET_MEAN, pixel_std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.num_classes = num_classes
        self.default_boxes = default_boxes
        self.image_size = self.fixed_size = int(image_size)
        self.box_coder = box_coder
        self.target_builder = DenseTargetBuilder(matcher, box_coder)
        self.neg_pos_ratio, self.min_negatives, self.box_loss_beta = neg_pos_ratio, min_negatives, box_loss_beta
        self.postprocess = postprocess
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std), persistent=False)

    def features(self, images: Tensor) -> list[Tensor]:
        return self.backbone(images)

    def feature_modules(self) -> list[nn.Module]:
        return [self.backbone]

    def anchors_generator(self) -> SSDDefaultBoxes:
        return self.default_boxes

    def anchors_for(self, feature_sizes, input_size, device=None) -> list[Tensor]:
        return self.default_boxes.default_boxes(feature_sizes, (self.image_size, self.image_size), device=device)

    def dense_loss(self, out: DenseOutputs, dense: DenseTargets, normalizer: Tensor) -> dict[str, Tensor]:
        """MultiBox loss (``multibox_loss``): {"loss_cls", "loss_box"}, each / ``normalizer``."""
        return multibox_loss(out.cls_logits, out.box_deltas, dense, self.neg_pos_ratio, self.min_negatives,
                             self.box_loss_beta, normalizer)

    def class_layouts(self) -> dict[str, ClassLayout]:
        """``head.classification.{l}``: (A_l * (K + 1)) rows, ``a * (K + 1) + k``, background ``k = K``."""
        k = self.num_classes
        return {key: ClassLayout(int(value.shape[0]) // (k + 1), 1) for key, value in self.state_dict().items()
                if key.startswith("head.classification.") and key.endswith((".weight", ".bias"))}


def ssd_vgg16(num_classes: int, *,
              image_size: int = 300,
              backbone_weights: str | None = None,
              trainable_layers: int = 5,
              width: int = 64,
              batch_norm: bool = False,
              extra_layers: Sequence[Sequence[int]] | None = None,
              steps: Sequence[float] | None = None,
              min_sizes: Sequence[float] | None = None,
              max_sizes: Sequence[float] | None = None,
              aspect_ratios: Sequence[Sequence[float]] | None = None,
              clip_default_boxes: bool = True,
              l2norm_scale: float = 20.0,
              iou_thresh: float = 0.5,
              neg_pos_ratio: float = 3.0,
              min_negatives: int = 3,
              box_loss_beta: float = 1.0,
              score_thresh: float = 0.01,
              topk_candidates: int = 400,
              nms_thresh: float = 0.45,
              max_detections: int = 200,
              pixel_mean: Sequence[float] = IMAGENET_MEAN,
              pixel_std: Sequence[float] = IMAGENET_STD) -> SSD:
    """SSD on VGG16 for square ``image_size`` inputs, with the paper's numbers as defaults.

    For ``image_size`` 300 and 512, options left None take the paper's values (Liu et al. 2016,
    Sec. 3): the extra layers ``EXTRAS_300`` / ``EXTRAS_512``, steps
    (8, 16, 32, 64, 100, 300) / (8, 16, 32, 64, 128, 256, 512), the COCO box sizes of
    ``paper_box_sizes`` (pass ``paper_box_sizes(S, "voc")`` for the VOC models) and aspect
    ratios [2], [2, 3], [2, 3], [2, 3], ([2, 3],) [2], [2]. Other sizes need them all.
    The source maps' sizes follow from the layers (``SSDVGG16.feature_sizes``).

    ``extra_layers``: (mid_channels, out_channels, kernel, stride, padding) per extra layer, at
    width 64 (see ``ExtraLayer``). ``width``: VGG's conv1 channels (64); all channels scale.
    ``batch_norm``: BatchNorm in conv1_1..conv5_3 (torchvision's vgg16_bn; not the paper's).
    ``backbone_weights``: a torchvision ``vgg16`` (``vgg16_bn`` with ``batch_norm``) state dict
    file (ImageNet) or None.
    ``trainable_layers``: VGG stages left trainable (5 = all; 3 freezes conv1-conv2 as the
    Caffe SSD scripts do).
    ``min_negatives``: hard negatives mined in an image without positives (0 = torchvision).

    The digits preset (``config.presets.SSD_DIGITS``) is this function with small options.
    """
    from anchordet.backbones.ssd_vgg import SSDVGG16, load_vgg16_weights
    from anchordet.heads.ssd import SSDHead
    from anchordet.backbones.weights import resolve_backbone_weights

    options = _resolve_layout(image_size, extra_layers=extra_layers, steps=steps, min_sizes=min_sizes,
                              max_sizes=max_sizes, aspect_ratios=aspect_ratios)
    backbone = SSDVGG16(width, options["extra_layers"], l2norm_scale, batch_norm)
    weights_file = resolve_backbone_weights(backbone_weights, "vgg16_bn" if batch_norm else "vgg16")
    if weights_file:
        load_vgg16_weights(backbone, weights_file)
    backbone.freeze(trainable_layers)
    boxes = SSDDefaultBoxes(options["steps"], options["min_sizes"], options["max_sizes"], options["aspect_ratios"],
                            clip=clip_default_boxes)
    feature_sizes = backbone.feature_sizes(image_size)
    if len(feature_sizes) != boxes.num_levels or min(feature_sizes) < 1:
        raise ValueError(f"image_size {image_size} with {len(options['extra_layers'])} extra layers gives source "
                         f"maps of sides {feature_sizes}, but the default boxes have {boxes.num_levels} levels")
    return SSD(
        backbone, SSDHead(backbone.out_channels, boxes.num_boxes_per_location, num_classes), num_classes, boxes,
        image_size, matcher=IoUMatcher(iou_thresh, iou_thresh, low_quality="force"),
        neg_pos_ratio=neg_pos_ratio, min_negatives=min_negatives, box_loss_beta=box_loss_beta,
        postprocess=DensePostprocess(score_thresh, topk_candidates, nms_thresh, max_detections),
        pixel_mean=pixel_mean, pixel_std=pixel_std,
    )


def _standard_layout(image_size: int) -> dict:
    from anchordet.backbones.ssd_vgg import EXTRAS_300, EXTRAS_512

    min_sizes, max_sizes = paper_box_sizes(image_size, "coco")
    if image_size == 300:
        return dict(extra_layers=EXTRAS_300, steps=(8, 16, 32, 64, 100, 300), min_sizes=min_sizes,
                    max_sizes=max_sizes, aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)))
    return dict(extra_layers=EXTRAS_512, steps=(8, 16, 32, 64, 128, 256, 512), min_sizes=min_sizes,
                max_sizes=max_sizes, aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)))


def _resolve_layout(image_size: int, **given) -> dict:
    """Fill options left None with the paper's values for 300 / 512."""
    if image_size in (300, 512):
        standard = _standard_layout(image_size)
        return {k: standard[k] if v is None else v for k, v in given.items()}
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ValueError(f"image_size {image_size}: only 300 and 512 have default layouts; "
                         f"give {', '.join(missing)}")
    return given


def ssd300_vgg16(num_classes: int, **options) -> SSD:
    """SSD300 (8732 default boxes); ``options`` as ``ssd_vgg16``."""
    return ssd_vgg16(num_classes, image_size=300, **options)


def ssd512_vgg16(num_classes: int, **options) -> SSD:
    """SSD512 (24564 default boxes); ``options`` as ``ssd_vgg16``."""
    return ssd_vgg16(num_classes, image_size=512, **options)
