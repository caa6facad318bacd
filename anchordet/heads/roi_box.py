"""Fast R-CNN box heads: pooled RoI features -> class logits and class-specific box deltas.

Two designs, both ending in the same two sibling linear layers (Girshick 2015, Sec. 2):
  - ``VGGBoxHead`` (seed 003): flatten the 7x7 RoI-pooled conv5_3, fc6 -> ReLU -> Dropout ->
    fc7 -> ReLU -> Dropout (4096 each; the layers torchvision's VGG ``classifier[:6]`` has, so
    ImageNet fc weights apply, see ``backbones.vgg.VGG16.pop_classifier``).
  - ``ResNetC4Head`` (seed 004; He et al. 2016, Appendix A): ResNet's ``layer4`` on the 14x14
    RoI features (its stride 2 gives 7x7), then global average pooling.

Outputs: ``class_logits`` (R, K + 1) with background LAST (index K, docs/design.md contract 3) and
``box_deltas`` (R, (K + 1) * 4), the deltas of class c at columns 4c..4c+3 (the background's
slot, kept for seed 003's (128, 84) shape, is never trained or used). Initialisation
(Girshick 2015, Sec. 2.3): class scores N(0, 0.01), box deltas N(0, 0.001), zero biases.
"""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class RoIHeadOutputs(NamedTuple):
    """class_logits (R, K + 1), background last; box_deltas (R, (K + 1) * 4)."""

    class_logits: Tensor
    box_deltas: Tensor


class BoxPredictor(nn.Module):
    """The two sibling output layers: ``cls_score`` and ``bbox_pred`` (torchvision's names)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes + 1)
        self.bbox_pred = nn.Linear(in_features, (num_classes + 1) * 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> RoIHeadOutputs:
        """(R, F) -> RoIHeadOutputs."""
        return RoIHeadOutputs(self.cls_score(x), self.bbox_pred(x))


class VGGBoxHead(nn.Module):
    """Args:
        classifier: fc6-fc7 (``backbones.vgg.vgg_fc_layers`` or ``VGG16.pop_classifier()``),
            taking C * 7 * 7 inputs.
        out_features: fc7's width (4096).
        num_classes: K foreground classes.
    """

    def __init__(self, classifier: nn.Sequential, out_features: int, num_classes: int):
        super().__init__()
        self.classifier = classifier
        self.predictor = BoxPredictor(out_features, num_classes)

    def forward(self, pooled: Tensor) -> RoIHeadOutputs:
        """(R, C, 7, 7) pooled features -> RoIHeadOutputs."""
        return self.predictor(self.classifier(pooled.flatten(1)))


class ResNetC4Head(nn.Module):
    """Args:
        layer4: ResNet's last stage (stride 2), e.g. ``ResNet(...).stage("c5")``.
        out_channels: layer4's output channels (2048 for ResNet-50, 512 for ResNet-18).
        num_classes: K foreground classes.
    """

    def __init__(self, layer4: nn.Module, out_channels: int, num_classes: int):
        super().__init__()
        self.layer4 = layer4
        self.predictor = BoxPredictor(out_channels, num_classes)

    def forward(self, pooled: Tensor) -> RoIHeadOutputs:
        """(R, C4, 14, 14) pooled features -> RoIHeadOutputs (layer4 gives (R, C5, 7, 7))."""
        return self.predictor(self.layer4(pooled).mean(dim=(2, 3)))
