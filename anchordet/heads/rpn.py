"""RPN head (Ren et al. 2015, Sec. 3.1; seed 003): a 3x3 conv with ReLU sliding over the
feature map, then two sibling 1x1 convs: objectness and box deltas for A anchors per location.

Objectness is one logit per anchor (sigmoid, binary cross-entropy), not seed 003's two-way
softmax over A * 2 outputs: the paper notes the two are equivalent (Sec. 3.1, footnote 2:
"one may use logistic regression to produce k scores"); one logit halves the layer and matches
torchvision's ``RPNHead`` (``conv``, ``cls_logits``, ``bbox_pred``).

Outputs are flattened to the anchor generator's order (row, column, anchor) like the dense
heads, through ``heads.retina.flatten_anchors``. Initialisation: N(0, 0.01) weights and zero
biases for all three convs (seed 003, Ren et al. Sec. 3.1.3).
"""
from __future__ import annotations

from torch import Tensor, nn

from anchordet.heads.retina import flatten_anchors


class RPNHead(nn.Module):
    """Args:
        in_channels: backbone channels (512 for VGG16 conv5_3, 1024 for ResNet C4).
        num_anchors: A anchors per location (9).
        channels: width of the 3x3 conv (512, seeds 003 and 004).
    """

    def __init__(self, in_channels: int, num_anchors: int, channels: int = 512):
        super().__init__()
        self.num_anchors = num_anchors
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(channels, num_anchors * 4, 1)
        for conv in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, H, W) -> objectness logits (B, H*W*A) and box deltas (B, H*W*A, 4)."""
        hidden = self.conv(features).relu()
        objectness = flatten_anchors(self.cls_logits(hidden), 1).squeeze(-1)  # (B, H*W*A)
        deltas = flatten_anchors(self.bbox_pred(hidden), 4)  # (B, H*W*A, 4)
        return objectness, deltas
