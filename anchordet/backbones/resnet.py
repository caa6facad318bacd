"""ResNet-18/34/50/101/152 (He et al. 2016) as a detection backbone (seed 001).

Module and parameter names are those of ``torchvision.models.resnet`` (conv1, bn1, layer1..4;
blocks' conv1/bn1/conv2/bn2[/conv3/bn3]/downsample.0/.1), so torchvision's ImageNet state dicts
load as they are (without ``fc``). Bottleneck blocks put the stride on the 3x3 conv
(torchvision's "v1.5").

Outputs, selected by ``return_layers``: "c2".."c5" = layer1..layer4 (strides 4, 8, 16, 32).
RetinaNet takes C3-C5; the Faster R-CNN C4 design takes C4 and runs ``layer4`` (kept on the
module, see ``ResNet.stage``) as its RoI head.

Initialisation (trained from scratch; pretrained weights overwrite it): seed 001's and
torchvision's, every conv (stem, blocks, downsample) N(0, sqrt(2 / (k * k * out_channels))),
BN weight 1 and bias 0. The FPN and the heads keep their own (see DEVELOPERS.md).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from anchordet.ops.fuse import conv_bn

LAYER_NAMES = {"c2": "layer1", "c3": "layer2", "c4": "layer3", "c5": "layer4"}


def _norm(channels: int, frozen: bool) -> nn.Module:
    # Frozen BN (seed 001, "won't use batchnorm because of small batch size"): the ImageNet
    # statistics and affine stay fixed; with detection batch sizes of 2-16 images per GPU,
    # batch statistics are too noisy to train.
    return FrozenBatchNorm2d(channels) if frozen else nn.BatchNorm2d(channels)


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN and a residual. ``fold_bn``: run each fixed BN folded into its conv
    (``_conv_bn``); given by ``ResNet`` (and switched by ``anchordet.ops.fuse.fold_batch_norms``)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int, frozen_bn: bool, fold_bn: bool = False):
        super().__init__()
        self.fold_bn = fold_bn
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = _norm(channels, frozen_bn)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = _norm(channels, frozen_bn)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, channels, stride, frozen_bn)

    def forward(self, x: Tensor) -> Tensor:
        # The in-place add and ReLU save two passes over the output (a conv's or BN's backward
        # does not need its output); with ``fold_bn`` a fixed BN runs folded into its conv.
        identity = x if self.downsample is None else _conv_bn(self, x, *self.downsample)
        out = _conv_bn(self, x, self.conv1, self.bn1).relu_()
        out = _conv_bn(self, out, self.conv2, self.bn2)
        return out.add_(identity).relu_()

    def forward_reference(self, x: Tensor) -> Tensor:
        """The plain module-by-module forward, the reference of ``forward`` in the tests."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

    @property
    def last_bn(self) -> nn.Module:
        """The norm that ends the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2


class Bottleneck(nn.Module):
    """1x1, 3x3, 1x1 convs with BN and a residual; ``fold_bn`` as ``BasicBlock``."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int, frozen_bn: bool, fold_bn: bool = False):
        super().__init__()
        self.fold_bn = fold_bn
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = _norm(channels, frozen_bn)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = _norm(channels, frozen_bn)
        self.conv3 = nn.Conv2d(channels, channels * 4, 1, bias=False)
        self.bn3 = _norm(channels * 4, frozen_bn)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, channels * 4, stride, frozen_bn)

    def forward(self, x: Tensor) -> Tensor:
        """As ``BasicBlock.forward``: in-place add and ReLU, BN folded when ``fold_bn``."""
        identity = x if self.downsample is None else _conv_bn(self, x, *self.downsample)
        out = _conv_bn(self, x, self.conv1, self.bn1).relu_()
        out = _conv_bn(self, out, self.conv2, self.bn2).relu_()
        out = _conv_bn(self, out, self.conv3, self.bn3)
        return out.add_(identity).relu_()

    def forward_reference(self, x: Tensor) -> Tensor:
        """The plain module-by-module forward, the reference of ``forward`` in the tests."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)

    @property
    def last_bn(self) -> nn.Module:
        """The norm that ends the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3


def _conv_bn(owner: nn.Module, x: Tensor, conv: nn.Conv2d, bn: nn.Module) -> Tensor:
    """``bn(conv(x))``; folded into one conv when ``owner.fold_bn`` (``anchordet.ops.fuse``).
    Folding is exact in real arithmetic but rounds differently (about 1e-6 relative), so it is
    opt-in: torchvision-converted models then no longer give bit-for-bit torchvision's outputs."""
    return conv_bn(x, conv, bn) if owner.fold_bn else bn(conv(x))


def _downsample(in_channels: int, out_channels: int, stride: int, frozen_bn: bool) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), _norm(out_channels, frozen_bn))


# depth -> (block, blocks per stage); He et al. 2016, Table 1.
RESNET_SPECS: dict[int, tuple[type, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """Args:
        depth: 18, 34, 50, 101 or 152.
        return_layers: which of "c2".."c5" ``forward`` returns, in order.
        frozen_bn: FrozenBatchNorm2d instead of BatchNorm2d.
        trainable_layers: how many stages, counted from layer4 backwards, get gradients
            (0..5; 5 includes the stem). torchvision's and Detectron's default is 3.
        width: channels of the stem and of layer1 (64 in the paper); smaller values make the tiny
            models used by tests and the digits presets.
        fold_bn: run every fixed BN (frozen, or a BatchNorm2d in eval mode) folded into its
            convolution (``anchordet.ops.fuse.conv_bn``; opt-in, see ``_conv_bn``). The model and
            each block keep it as an instance attribute; ``anchordet.ops.fuse.fold_batch_norms``
            switches it on a built model.
        zero_init_residual: start the last BN of every residual block at weight 0 (Goyal et al.
            2017, torchvision's ``zero_init_residual``), so each block starts as the identity;
            for training from scratch (pretrained weights overwrite it).
    """

    def __init__(self, depth: int = 50, return_layers: Sequence[str] = ("c3", "c4", "c5"),
                 frozen_bn: bool = True, trainable_layers: int = 3, width: int = 64, fold_bn: bool = False,
                 zero_init_residual: bool = False):
        super().__init__()
        self.fold_bn = fold_bn
        if depth not in RESNET_SPECS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_SPECS)}, got {depth}")
        unknown = [name for name in return_layers if name not in LAYER_NAMES]
        if unknown:
            raise ValueError(f"unknown ResNet outputs {unknown}; choose from {list(LAYER_NAMES)}")
        if not 0 <= trainable_layers <= 5:
            raise ValueError(f"trainable_layers must be in 0..5, got {trainable_layers}")
        block, counts = RESNET_SPECS[depth]
        self.depth, self.return_layers = depth, tuple(return_layers)
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = _norm(width, frozen_bn)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels, in_channels = width, width
        self.stage_channels: dict[str, int] = {}
        for index, (count, stride) in enumerate(zip(counts, (1, 2, 2, 2))):
            blocks = []
            for i in range(count):
                blocks.append(block(in_channels, channels, stride if i == 0 else 1, frozen_bn, fold_bn))
                in_channels = channels * block.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            self.stage_channels[f"c{index + 2}"] = in_channels
            channels *= 2
        self.out_channels = [self.stage_channels[name] for name in self.return_layers]
        self._init_weights(zero_init_residual)
        self._freeze(trainable_layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # Seed 001 and torchvision's ResNet: every conv N(0, sqrt(2 / (k * k * out_channels)))
        # (He et al. 2015, fan_out), BN weight 1 and bias 0 (the last BN of a block at 0 only with
        # zero_init_residual, as torchvision). PyTorch's default conv init is ~2.4x smaller, which
        # from scratch gave larger loss spikes (issue 19 item 15). Pretrained weights overwrite it.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)) and isinstance(module.last_bn, nn.BatchNorm2d):
                    nn.init.zeros_(module.last_bn.weight)

    def _freeze(self, trainable_layers: int) -> None:
        stages = ["layer4", "layer3", "layer2", "layer1", "stem"][:trainable_layers]
        for name, param in self.named_parameters():
            stage = name.split(".")[0] if name.startswith("layer") else "stem"
            param.requires_grad_(stage in stages)

    def stage(self, name: str) -> nn.Module:
        """The module of a stage by output name, e.g. ``stage("c5")`` is ``layer4``."""
        return getattr(self, LAYER_NAMES[name])

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) normalized images -> the ``return_layers`` feature maps."""
        x = self.maxpool(_conv_bn(self, x, self.conv1, self.bn1).relu_())
        outputs = []
        last = max(int(name[1]) for name in self.return_layers)
        for level in range(2, last + 1):
            x = getattr(self, f"layer{level - 1}")(x)
            if f"c{level}" in self.return_layers:
                outputs.append(x)
        return outputs


def resnet(depth: int, **options) -> ResNet:
    return ResNet(depth, **options)
