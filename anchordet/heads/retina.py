"""RetinaNet subnets (seed 000; Lin et al. 2017 Sec. 4): a classification and a box subnet,
each 4 x (3x3 conv, 256, ReLU) and a 3x3 output conv, shared by every pyramid level.

Outputs are logits (no sigmoid: the focal loss takes logits and post-processing applies the
sigmoid). Each level's output (B, A*K, H, W) is read as (B, A, K, H, W) and permuted to
(B, H, W, A, K), then flattened to (B, H*W*A, K): the anchor generator's order (locations
row-major, then the A anchors of a location), as seed 000's view through (B, H, W, A, K).

Initialisation (the seeds README asks to choose deliberately): the paper's, not seed 001's code:
subnet convs N(0, 0.01) with zero bias; class output bias -log((1 - pi) / pi) with pi = 0.01
so that every anchor starts as background with confidence ~0.99 (Sec. 3.3, 4.1); box output
weight and bias zero (seed 001), so training starts from the anchors themselves.

Names map onto torchvision's ``RetinaNetHead``: ``cls_subnet.{2i}`` <-> ``classification_head.
conv.{i}.0``, ``cls_output`` <-> ``classification_head.cls_logits``, ``box_subnet`` /
``box_output`` <-> ``regression_head.conv`` / ``bbox_reg``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _subnet(in_channels: int, channels: int, num_convs: int, norm: str | None = None) -> nn.Sequential:
    """num_convs x (3x3 conv, ReLU); with ``norm="gn"`` (3x3 conv, GroupNorm, ReLU)."""
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers.append(nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1))
        if norm == "gn":
            layers.append(ContiguousGroupNorm(gn_groups(channels), channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ContiguousGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` computed on an NCHW copy of a channels_last input: torch 2.14.1's CPU
    GroupNorm kernels are several times slower on channels_last (conv + GN + ReLU, forward and
    backward, bf16, (16, 32, 32, 32): 12 ms against 6 ms with the copy). Same parameters and
    results as ``nn.GroupNorm``."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.contiguous())


def gn_groups(channels: int) -> int:
    """GroupNorm groups for a subnet of ``channels``: 32 (FCOS / torchvision's RetinaNet v2 at
    256 channels), fewer for narrow heads so that a group keeps at least 8 channels."""
    return max(1, min(32, channels // 8))


class RetinaHead(nn.Module):
    """Args:
        in_channels: FPN channels (256).
        num_anchors: A anchors per location (9).
        num_classes: K foreground classes.
        channels / num_convs: subnet width and depth (256 and 4 in the paper).
        prior_probability: pi of the class bias initialisation (0.01).
        norm: None (the paper) or "gn": GroupNorm after every subnet conv (FCOS, torchvision's
            ``retinanet_resnet50_fpn_v2``), which trains faster from scratch (BENCHMARKS.md).
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, channels: int = 256,
                 num_convs: int = 4, prior_probability: float = 0.01, norm: str | None = None):
        super().__init__()
        if norm not in (None, "gn"):
            raise ValueError(f"head norm must be None or 'gn', got {norm!r}")
        self.num_anchors, self.num_classes = num_anchors, num_classes
        self.cls_subnet = _subnet(in_channels, channels, num_convs, norm)
        self.box_subnet = _subnet(in_channels, channels, num_convs, norm)
        last = channels if num_convs else in_channels
        self.cls_output = nn.Conv2d(last, num_anchors * num_classes, 3, padding=1)
        self.box_output = nn.Conv2d(last, num_anchors * 4, 3, padding=1)
        for module in list(self.cls_subnet) + list(self.box_subnet) + [self.cls_output]:
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_output.bias, -math.log((1 - prior_probability) / prior_probability))
        nn.init.zeros_(self.box_output.weight)
        nn.init.zeros_(self.box_output.bias)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """P3..P7 -> (per level (B, H*W*A, K) class logits, per level (B, H*W*A, 4) deltas)."""
        cls_per_level = [flatten_anchors(self.cls_output(self.cls_subnet(f)), self.num_classes) for f in features]
        box_per_level = [flatten_anchors(self.box_output(self.box_subnet(f)), 4) for f in features]
        return cls_per_level, box_per_level


def flatten_anchors(output: Tensor, values_per_anchor: int) -> Tensor:
    """(B, A * V, H, W) -> (B, H * W * A, V), anchor order: row, column, anchor."""
    batch, _, height, width = output.shape
    output = output.view(batch, -1, values_per_anchor, height, width)  # (B, A, V, H, W)
    return output.permute(0, 3, 4, 1, 2).reshape(batch, -1, values_per_anchor)  # (B, H*W*A, V)
