"""Feature Pyramid Network P3-P7 for RetinaNet (Lin et al. 2017 "Focal Loss", Sec. 4; seed 001).

P3-P5: 1x1 lateral convs on C3-C5, top-down nearest upsampling and addition, 3x3 output convs.
P6: 3x3 stride-2 conv on C5 (seed 001 and the paper), or on P5 (``p6_from="p5"``, what
torchvision's ``retinanet_resnet50_fpn`` does). P7: ReLU then 3x3 stride-2 conv on P6.

Parameter names (``lateral.{i}``, ``output.{i}``, ``p6``, ``p7``) map onto torchvision's
``backbone.fpn.inner_blocks.{i}.0``, ``backbone.fpn.layer_blocks.{i}.0`` and
``backbone.fpn.extra_blocks.p6/p7`` (see ``anchordet.interop.torchvision``).
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class FPN(nn.Module):
    """Args:
        in_channels: channels of C3, C4, C5.
        out_channels: 256 in the paper.
        p6_from: "c5" (seed 001, paper) or "p5" (torchvision).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, p6_from: Literal["c5", "p5"] = "c5"):
        super().__init__()
        if p6_from not in ("c5", "p5"):
            raise ValueError(f"p6_from must be 'c5' or 'p5', got {p6_from!r}")
        self.p6_from = p6_from
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        self.p6 = nn.Conv2d(in_channels[-1] if p6_from == "c5" else out_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        self.out_channels = out_channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He-uniform with a = 1, as Detectron's and torchvision's FPN.
                nn.init.kaiming_uniform_(module.weight, a=1)
                nn.init.zeros_(module.bias)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """[C3, C4, C5] -> [P3, P4, P5, P6, P7], each (B, out_channels, H_l, W_l)."""
        top_down = self.lateral[-1](features[-1])
        outputs = [self.output[-1](top_down)]
        for index in range(len(features) - 2, -1, -1):
            lateral = self.lateral[index](features[index])
            # Upsample to the lateral's exact size: odd sizes (e.g. 13 -> 26 vs 25) stay aligned.
            top_down = lateral + F.interpolate(top_down, size=lateral.shape[-2:], mode="nearest")
            outputs.insert(0, self.output[index](top_down))
        p6 = self.p6(features[-1] if self.p6_from == "c5" else outputs[-1])
        p7 = self.p7(F.relu(p6))
        return outputs + [p6, p7]
