"""SSD multibox head (Liu et al. 2016, Sec. 2.1; seed 002's ``multibox``): on each source map
one 3x3 conv for the class logits (A_l * (K + 1) channels) and one for the box deltas (A_l * 4).

Each level's output (B, A_l * C, H, W) is read as (B, A_l, C, H, W) and permuted to
(B, H, W, A_l, C), then flattened to (B, H * W * A_l, C): locations row-major, then the A_l
default boxes of a location, exactly the order of ``anchordet.anchors.ssd.SSDDefaultBoxes`` and
of torchvision's ``SSDScoringHead``.

Logits: K + 1 per box, foreground classes 0..K-1 and background LAST (index K, docs/design.md
contract 3). torchvision puts background first, so converting its ``head.classification_head.
module_list.{l}`` into ``classification.{l}`` also rolls each box's C output channels by -1
(``regression.{l}`` <-> ``head.regression_head.module_list.{l}`` maps as is).

Initialisation: Xavier uniform weights, zero bias (torchvision's ``_xavier_init``, ssd.pytorch).
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from anchordet.heads.retina import flatten_anchors


class SSDHead(nn.Module):
    """Args:
        in_channels: channels of each source map.
        num_boxes_per_location: A_l per level ([4, 6, 6, 6, 4, 4] for SSD300).
        num_classes: K foreground classes; the head predicts K + 1 logits per box.
    """

    def __init__(self, in_channels: Sequence[int], num_boxes_per_location: Sequence[int], num_classes: int):
        super().__init__()
        if len(in_channels) != len(num_boxes_per_location):
            raise ValueError(f"{len(in_channels)} source maps but {len(num_boxes_per_location)} levels of boxes")
        self.num_classes = num_classes
        self.classification = nn.ModuleList(
            nn.Conv2d(c, a * (num_classes + 1), 3, padding=1) for c, a in zip(in_channels, num_boxes_per_location))
        self.regression = nn.ModuleList(
            nn.Conv2d(c, a * 4, 3, padding=1) for c, a in zip(in_channels, num_boxes_per_location))
        for conv in list(self.classification) + list(self.regression):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Source maps -> (per level (B, H*W*A_l, K + 1) logits, per level (B, H*W*A_l, 4) deltas)."""
        if len(features) != len(self.classification):
            raise ValueError(f"{len(features)} feature maps for a head of {len(self.classification)} levels")
        cls_per_level = [flatten_anchors(conv(f), self.num_classes + 1)
                         for conv, f in zip(self.classification, features)]
        box_per_level = [flatten_anchors(conv(f), 4) for conv, f in zip(self.regression, features)]
        return cls_per_level, box_per_level
