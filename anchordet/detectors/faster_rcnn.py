"""Faster R-CNN (Ren et al. 2015): a backbone at stride 16, the RPN, RoI pooling and a Fast
R-CNN box head. Two designs: VGG16 (BN or not) with RoIPool 7x7 and the fc6-fc7 head (seed
003), and ResNet-C4 with 14x14 RoIs through layer4 and average pooling (seed 004).

Raw outputs (``forward``): only the dense part, i.e. the stride-16 features, the RPN's
objectness and deltas and the anchors (``FasterRCNNOutputs``). ``flat_detections`` runs the rest
(proposals with their NMS, RoI pooling, the RoI head, the per-class post-processing) on the whole
batch in tensor ops whose shapes follow the data: ``predict`` is that plus padding and a split per
image, and export traces it, both stages and their NMS inside one graph.

Training (approximate joint training, Ren et al. Sec. 3.2): proposals are detached; the RoI
head's loss reaches the backbone through the pooled features, the RPN's through its head (seed
003 cut both with ``.data``).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from anchordet.anchors.grid import GridAnchorGenerator
from anchordet.anchors.training import TrainingAnchors
from anchordet.detectors.base import ClassLayout, Detector
from anchordet.detectors.rpn import RegionProposalNetwork, RPNOutputs
from anchordet.distributed import reduce_mean
from anchordet.heads.roi_box import ResNetC4Head, RoIHeadOutputs, VGGBoxHead
from anchordet.heads.rpn import RPNHead
from anchordet.losses.fast_rcnn import fast_rcnn_loss
from anchordet.losses.roi_targets import RoITargetBuilder
from anchordet.matching.iou_matcher import IoUMatcher
from anchordet.ops.meta import feature_map_sizes
from anchordet.ops.roi_pool import RoIPooler
from anchordet.postprocess.proposals import ProposalGenerator, ProposalSettings
from anchordet.postprocess.roi import RoIPostprocess
from anchordet.postprocess.select import image_sizes_tensor
from anchordet.sampling.balanced import BalancedSampler
from anchordet.structures.image_batch import IMAGENET_MEAN, IMAGENET_STD, normalize
from anchordet.structures.outputs import FlatDetections
from anchordet.structures.targets import Detections, Targets, validate_targets


class FasterRCNNOutputs(NamedTuple):
    """features (B, C, H/16, W/16); rpn_objectness (B, A) logits; rpn_box_deltas (B, A, 4);
    anchors (A, 4) xyxy input pixels, A = H/16 * W/16 * anchors per location."""

    features: Tensor
    rpn_objectness: Tensor
    rpn_box_deltas: Tensor
    anchors: Tensor


class FasterRCNN(Detector):
    """Args:
        backbone: images (B, 3, H, W) -> [features (B, C, H/16, W/16)].
        rpn: the RegionProposalNetwork on those features.
        roi_pooler: RoIPool 7x7 (VGG16) or 14x14 (C4), or RoIAlign; spatial scale 1/16.
        roi_head: pooled (R, C, s, s) -> RoIHeadOutputs.
        num_classes: K foreground classes; the head has K + 1 logits, background last.
        roi_target_builder / roi_box_loss_beta: RoI stage training (smooth L1 beta 1, Girshick
            2015 Eq. 3).
        postprocess: score threshold, per-class NMS and detections per image.
        size_divisible: inputs are padded to a multiple of the stride (16).
    """

    network_parts = ("backbone", "rpn.head", "roi_head")
    family = "faster_rcnn"
    fixed_size = None

    def __init__(self, backbone: nn.Module, rpn: RegionProposalNetwork, roi_pooler: RoIPooler,
                 roi_head: nn.Module, num_classes: int,
                 roi_target_builder: RoITargetBuilder = RoITargetBuilder(),
                 roi_box_loss_beta: float = 1.0,
                 postprocess: RoIPostprocess = RoIPostprocess(),
                 pixel_mean: Sequence[float] = IMAGENET_MEAN, pixel_std: Sequence[float] = IMAGENET_STD,
                 size_divisible: int = 16):
        super().__init__()
        self.backbone, self.rpn, self.roi_pooler, self.roi_head = backbone, rpn, roi_pooler, roi_head
        self.num_classes = num_classes
        self.roi_target_builder, self.roi_box_loss_beta = roi_target_builder, roi_box_loss_beta
        self.postprocess = postprocess
        self.size_divisible = size_divisible
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std), persistent=False)

    def forward(self, images: Tensor) -> FasterRCNNOutputs:
        """images: (B, 3, H, W) float in [0, 1], H and W multiples of ``size_divisible``."""
        (features,) = self.backbone(normalize(images, self.pixel_mean, self.pixel_std))
        rpn = self.rpn(features)
        return FasterRCNNOutputs(features, rpn.objectness, rpn.box_deltas, rpn.anchors)

    def roi_outputs(self, features: Tensor, proposals_per_image: Sequence[Tensor]) -> RoIHeadOutputs:
        """features (B, C, h, w), B x (R_i, 4) boxes -> class logits (R, K + 1), deltas (R, (K + 1) * 4)."""
        return self.roi_head(self.roi_pooler(features, proposals_per_image))

    def training_anchors(self, image_size: tuple[int, int]) -> TrainingAnchors:
        """The anchors the RPN's ``loss`` matches for one image of ``image_size`` (height, width,
        as the data pipeline resized it) alone in its batch, with the RPN's training matcher and
        border rule: what the anchor analysis reads. Feature map sizes come from a shape-only
        (meta) forward: nothing is computed."""
        input_size = self.input_size(image_size)
        feature_sizes = feature_map_sizes([self.backbone], input_size)
        generator, builder = self.rpn.anchor_generator, self.rpn.target_builder
        return TrainingAnchors(torch.cat(generator.grid_anchors(feature_sizes)), feature_sizes, input_size,
                               tuple(image_size), generator, builder.matcher, builder.allowed_border)

    def loss(self, images, targets: Sequence[Targets],
             generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """{"loss_rpn_cls", "loss_rpn_box", "loss_roi_cls", "loss_roi_box"}, scalar tensors.
        ``images`` as ``predict``; ``generator`` drives the anchor and RoI sampling (None: the
        global RNG). Uses the RPN's training proposal settings."""
        batch = self.image_batch(images)
        validate_targets(list(targets), self.num_classes, len(batch))
        targets = [t.to(batch.tensor.device) for t in targets]
        out = self(batch.tensor)
        rpn_out = self.rpn_outputs(out)
        losses = self.rpn.loss(rpn_out, targets, batch.image_sizes, generator)
        proposals = self.rpn.proposals(rpn_out, batch.image_sizes, self.rpn.train_proposals)
        sampled = self.roi_target_builder.build(proposals.boxes, targets, self.num_classes, generator)
        head = self.roi_outputs(out.features, sampled.proposals)
        # the sampled RoIs, under DDP the mean count over processes (as the RPN's anchors)
        normalizer = reduce_mean(sampled.labels.new_tensor(len(sampled.labels), dtype=torch.float32)).clamp(min=1)
        losses.update(fast_rcnn_loss(head.class_logits, head.box_deltas, sampled, self.num_classes,
                                     self.roi_box_loss_beta, normalizer))
        return losses

    def class_layouts(self) -> dict[str, ClassLayout]:
        """The RoI head's ``predictor.cls_score``: K + 1 rows (background last); ``bbox_pred``:
        (K + 1) * 4 rows, ``4 * k + j``."""
        prefix = "roi_head.predictor"
        return {f"{prefix}.cls_score.weight": ClassLayout(1, 1), f"{prefix}.cls_score.bias": ClassLayout(1, 1),
                f"{prefix}.bbox_pred.weight": ClassLayout(1, 1, 4), f"{prefix}.bbox_pred.bias": ClassLayout(1, 1, 4)}

    @staticmethod
    def rpn_outputs(out: FasterRCNNOutputs) -> RPNOutputs:
        return RPNOutputs(out.rpn_objectness, out.rpn_box_deltas, out.anchors)

    @torch.inference_mode()  # no autograd bookkeeping at all (cheaper than no_grad)
    def predict(self, images, postprocess: RoIPostprocess | None = None,
                proposal_settings: ProposalSettings | None = None) -> list[Detections]:
        """Args:
            images: (B, 3, H, W) float tensor or a list of (3, H_i, W_i) float tensors, in [0, 1].
            postprocess / proposal_settings: override the model's for this call (default: the
                RPN's test settings, 6000 / 300).
        Returns:
            one ``Detections`` per image, boxes in that image's pixels, labels 0..K-1.
        """
        batch = self.image_batch(images)
        return self.flat_detections(batch.tensor, batch.image_sizes, postprocess,
                                    proposal_settings).per_image(len(batch))

    def flat_detections(self, images: Tensor, image_sizes: Tensor | Sequence[tuple[int, int]],
                        postprocess: RoIPostprocess | None = None,
                        proposal_settings: ProposalSettings | None = None) -> FlatDetections:
        """The traceable core of ``predict`` (and what export traces): images (B, 3, H, W) in
        [0, 1] padded as ``forward`` wants them, image_sizes (B, 2) each image's (height, width)
        before padding -> the batch's detections in input pixels."""
        sizes = image_sizes_tensor(image_sizes, images.device)
        out = self(images)
        proposals = self.rpn.flat_proposals(self.rpn_outputs(out), sizes, proposal_settings or self.rpn.test_proposals)
        head = self.roi_head(self.roi_pooler.pool_flat(out.features, proposals.boxes, proposals.batch_index))
        return (postprocess or self.postprocess).flat(head.class_logits, head.box_deltas, proposals.boxes,
                                                      proposals.batch_index, sizes, self.roi_target_builder.box_coder)


def assemble_faster_rcnn(backbone: nn.Module, feature_channels: int, roi_head: nn.Module, num_classes: int, *,
                         anchor_sizes: Sequence[float] = (128, 256, 512),
                         anchor_aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                         anchor_offset: float = 0.5,
                         rpn_channels: int = 512,
                         rpn_fg_iou_thresh: float = 0.7,
                         rpn_bg_iou_thresh: float = 0.3,
                         rpn_allowed_border: float | None = 0.0,
                         rpn_batch_size_per_image: int = 256,
                         rpn_positive_fraction: float = 0.5,
                         rpn_pre_nms_top_n_train: int = 12000,
                         rpn_post_nms_top_n_train: int = 2000,
                         rpn_pre_nms_top_n_test: int = 6000,
                         rpn_post_nms_top_n_test: int = 300,
                         rpn_nms_thresh: float = 0.7,
                         rpn_min_size: float = 16.0,
                         rpn_box_loss_beta: float = 1.0 / 9,
                         roi_pool: str = "pool",
                         roi_output_size: int = 7,
                         roi_sampling_ratio: int = 0,
                         roi_aligned: bool = True,
                         roi_fg_iou_thresh: float = 0.5,
                         roi_bg_iou_thresh_hi: float = 0.5,
                         roi_bg_iou_thresh_lo: float = 0.0,
                         roi_batch_size_per_image: int = 128,
                         roi_positive_fraction: float = 0.25,
                         roi_box_loss_beta: float = 1.0,
                         box_score_thresh: float = 0.05,
                         box_nms_thresh: float = 0.5,
                         box_detections_per_img: int = 100) -> FasterRCNN:
    """The RPN and RoI options shared by every Faster R-CNN factory, with the paper's / seed
    003's numbers as defaults (see ``detectors.rpn``, ``postprocess.proposals`` and
    ``losses.roi_targets.RoITargetBuilder``). Anchors: stride
    16, sizes 128/256/512 = scales 8/16/32 of a 16-px base, ratios 0.5/1/2, centred in each cell.
    """
    anchors = GridAnchorGenerator((tuple(anchor_sizes),), tuple(anchor_aspect_ratios), (16,), offset=anchor_offset)
    rpn = RegionProposalNetwork(
        RPNHead(feature_channels, anchors.num_anchors_per_location, rpn_channels), anchors,
        matcher=IoUMatcher(rpn_fg_iou_thresh, rpn_bg_iou_thresh, low_quality="ties"),
        allowed_border=rpn_allowed_border,
        sampler=BalancedSampler(rpn_batch_size_per_image, rpn_positive_fraction),
        proposal_generator=ProposalGenerator(rpn_nms_thresh, rpn_min_size),
        train_proposals=ProposalSettings(rpn_pre_nms_top_n_train, rpn_post_nms_top_n_train),
        test_proposals=ProposalSettings(rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test),
        box_loss_beta=rpn_box_loss_beta)
    pooler = RoIPooler(roi_pool, roi_output_size, 1.0 / 16, roi_sampling_ratio, roi_aligned)
    targets = RoITargetBuilder(IoUMatcher(roi_fg_iou_thresh, roi_bg_iou_thresh_hi), roi_bg_iou_thresh_lo,
                               BalancedSampler(roi_batch_size_per_image, roi_positive_fraction))
    return FasterRCNN(backbone, rpn, pooler, roi_head, num_classes, targets, roi_box_loss_beta,
                      RoIPostprocess(box_score_thresh, box_nms_thresh, box_detections_per_img))


def faster_rcnn_vgg16(num_classes: int, *,
                      batch_norm: bool = True,
                      backbone_weights: str | None = None,
                      frozen_bn: bool = True,
                      trainable_stages: int = 3,
                      backbone_width: int = 64,
                      fc_channels: int = 4096,
                      dropout: float = 0.5,
                      **options) -> FasterRCNN:
    """Faster R-CNN on VGG16 (seed 003 uses VGG16-BN): conv5_3 at stride 16, RoIPool 7x7,
    fc6-fc7 (4096) head.

    Args:
        backbone_weights: a torchvision ``vgg16_bn`` / ``vgg16`` state dict file (``.pth`` or
            ``.safetensors``; matching ``batch_norm``), or "imagenet" (torchvision's, from the
            torch hub cache); conv and fc6-fc7 weights are loaded, fc8 is left out. None / "none":
            random initialisation.
        trainable_stages: conv stages trained, from conv5 down (3: conv3_1 and up, Ren et al.
            Sec. 4.1); frozen_bn: BN layers keep their (ImageNet) statistics.
        options: any keyword of ``assemble_faster_rcnn``.
    """
    from anchordet.backbones.vgg import VGG16, VGG_IGNORED_PREFIXES
    from anchordet.backbones.weights import load_torchvision_weights, resolve_backbone_weights

    vgg = VGG16(batch_norm, backbone_width, frozen_bn, trainable_stages, fc_channels, dropout,
                pool_size=options.get("roi_output_size", 7))
    weights_file = resolve_backbone_weights(backbone_weights, "vgg16_bn" if batch_norm else "vgg16")
    if weights_file:
        load_torchvision_weights(vgg, weights_file, ignore_prefixes=VGG_IGNORED_PREFIXES)
    head = VGGBoxHead(vgg.pop_classifier(), fc_channels, num_classes)
    return assemble_faster_rcnn(vgg, vgg.out_channels, head, num_classes, **options)


def faster_rcnn_resnet_c4(depth: int, num_classes: int, *,
                          backbone_weights: str | None = None,
                          frozen_bn: bool = True,
                          trainable_layers: int = 3,
                          backbone_width: int = 64,
                          backbone_zero_init_residual: bool = False,
                          roi_output_size: int = 14,
                          **options) -> FasterRCNN:
    """Faster R-CNN on ResNet-``depth``-C4 (seed 004; He et al. 2016, Appendix A): layer1-3 as
    the backbone (stride 16), 14x14 RoIs through layer4 (stride 2 -> 7x7) and average pooling.

    Args:
        backbone_weights: a torchvision ResNet state dict file, or "imagenet" (torchvision's, from
            the torch hub cache); None / "none": random initialisation.
        trainable_layers: ResNet stages trained, from layer4 down (3: the stem and layer1 frozen,
            as Detectron's C4 models).
        backbone_zero_init_residual: every residual block (layer4 in the RoI head too) starts as
            the identity (``backbones.resnet.ResNet``; for training from scratch).
        options: any keyword of ``assemble_faster_rcnn``.
    """
    from anchordet.backbones.resnet import ResNet
    from anchordet.backbones.weights import load_torchvision_weights, resolve_backbone_weights

    backbone = ResNet(depth, ("c4",), frozen_bn=frozen_bn, trainable_layers=trainable_layers, width=backbone_width,
                      zero_init_residual=backbone_zero_init_residual)
    weights_file = resolve_backbone_weights(backbone_weights, f"resnet{depth}")
    if weights_file:
        load_torchvision_weights(backbone, weights_file)
    layer4 = backbone.stage("c5")
    # layer4 moves to the RoI head (the backbone's forward stops at layer3 for ("c4",)); removing
    # it from the backbone keeps one copy of each parameter in the detector's state dict.
    del backbone.layer4
    head = ResNetC4Head(layer4, backbone.stage_channels["c5"], num_classes)
    return assemble_faster_rcnn(backbone, backbone.stage_channels["c4"], head, num_classes,
                                roi_output_size=roi_output_size, **options)


def faster_rcnn_resnet18_c4(num_classes: int, **options) -> FasterRCNN:
    return faster_rcnn_resnet_c4(18, num_classes, **options)


def faster_rcnn_resnet50_c4(num_classes: int, **options) -> FasterRCNN:
    return faster_rcnn_resnet_c4(50, num_classes, **options)


def faster_rcnn_resnet101_c4(num_classes: int, **options) -> FasterRCNN:
    return faster_rcnn_resnet_c4(101, num_classes, **options)
