"""SSD's VGG16 base (Liu et al. 2016, Sec. 3 and Fig. 2; seed 002's ``vgg`` and ``add_extras``).

VGG16 configuration D up to conv5_3 with two changes: pool3 rounds up (seed 002's 'C',
``ceil_mode=True``: 75 -> 38 at 300 px) and pool5 is 3x3 stride 1 pad 1; then fc6 as a 3x3
conv with dilation 6 to 1024 channels and fc7 as a 1x1 conv ("reduced fc", Sec. 3), then the
extra layers, each a 1x1 conv that halves the channels and a 3x3 (or 4x4) conv. Every conv is
followed by ReLU (no batch norm). conv4_3's output is L2-normalised per location and rescaled
by a learned per-channel weight initialised to 20 (Liu et al., ParseNet; seed 002's L2Norm).

Outputs: the feature maps of conv4_3 (normalised), fc7 and the second conv of each extra layer.

Module names are torchvision's ``SSDFeatureExtractorVGG`` (ssd300_vgg16) so that converting its
weights is a key mapping: ``features.{i}`` (VGG16 ``features[:23]``, up to conv4_3's ReLU),
``extra.0`` (pool4, conv5_1..conv5_3 at ``extra.0.{1,3,5}``, and ``extra.0.7`` = pool5, fc6
``extra.0.7.1``, fc7 ``extra.0.7.3``), ``extra.{1..}`` (``extra.k.0`` the 1x1, ``extra.k.2`` the
3x3). Only torchvision's ``scale_weight`` is here ``l2norm.weight``.

SSD512 (Sec. 3.1, footnote 5 of the paper; the Caffe ssd_pascal_512.py): conv10_2 and conv11_2 are
3x3 stride 2 pad 1 and an extra conv12_2 is 4x4 pad 1, giving 64, 32, 16, 8, 4, 2, 1 cells at
512 px. torchvision's ``highres=True`` extractor (which has no weights) differs: it keeps
conv10_2/conv11_2 unpadded and gives 64, 32, 16, 8, 6, 4, 1.

``width`` scales every channel count by width / 64 (64 is VGG16; smaller widths make the tiny
models of the tests and the digits preset).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anchordet.backbones.weights import load_state_dict_file
from anchordet.errors import UserError


class ExtraLayer(NamedTuple):
    """One extra layer at width 64: 1x1 conv to ``mid_channels``, then a ``kernel_size`` conv
    with ``stride`` and ``padding`` to ``out_channels``."""

    mid_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    padding: int


# Liu et al. 2016 Fig. 2 (conv8_2 .. conv11_2); seed 002's extras['300'].
EXTRAS_300 = (ExtraLayer(256, 512, 3, 2, 1), ExtraLayer(128, 256, 3, 2, 1),
              ExtraLayer(128, 256, 3, 1, 0), ExtraLayer(128, 256, 3, 1, 0))
# Caffe ssd_pascal_512.py: conv8_2 .. conv12_2.
EXTRAS_512 = (ExtraLayer(256, 512, 3, 2, 1), ExtraLayer(128, 256, 3, 2, 1), ExtraLayer(128, 256, 3, 2, 1),
              ExtraLayer(128, 256, 3, 2, 1), ExtraLayer(128, 256, 4, 1, 1))

# VGG16 configuration D up to conv4_3 (Simonyan & Zisserman 2015, Table 1), 'C' = ceil-mode pool.
_VGG_TO_CONV4_3 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512)


class L2Norm(nn.Module):
    """x / ||x||_2 over channels, times a learned per-channel weight (initialised to ``scale``)."""

    def __init__(self, num_channels: int, scale: float = 20.0, eps: float = 1e-10):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_channels,), float(scale)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.weight.view(1, -1, 1, 1) * F.normalize(x, dim=1, eps=self.eps)


def _channels(channels: int, width: int) -> int:
    return max(1, channels * width // 64)


def _conv_relu(in_channels: int, out_channels: int, batch_norm: bool) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    return [conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]


def _vgg_features(width: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for entry in _VGG_TO_CONV4_3:
        if entry in ("M", "C"):
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=entry == "C"))
        else:
            out = _channels(entry, width)
            layers += _conv_relu(in_channels, out, batch_norm)
            in_channels = out
    return nn.Sequential(*layers)


def _conv5_fc7(width: int, batch_norm: bool) -> nn.Sequential:
    c512, c1024 = _channels(512, width), _channels(1024, width)
    conv5 = []
    for _ in range(3):
        conv5 += _conv_relu(c512, c512, batch_norm)
    fc = nn.Sequential(
        nn.MaxPool2d(3, 1, padding=1),  # pool5, Sec. 3: 3x3 s1 instead of 2x2 s2
        nn.Conv2d(c512, c1024, 3, padding=6, dilation=6),  # fc6, "atrous" (Sec. 3)
        nn.ReLU(inplace=True),
        nn.Conv2d(c1024, c1024, 1),  # fc7
        nn.ReLU(inplace=True),
    )
    return nn.Sequential(nn.MaxPool2d(2, 2), *conv5, fc)


class SSDVGG16(nn.Module):
    """Args:
        width: channels of conv1 (64 = VGG16); every other channel count scales with it.
        extra_layers: the extra layers after fc7 (``EXTRAS_300``, ``EXTRAS_512`` or fewer for
            small inputs), channel counts given at width 64.
        l2norm_scale: initial L2Norm weight (20, Sec. 3.1 / seed 002).
        batch_norm: BatchNorm after conv1_1..conv5_3, as torchvision's ``vgg16_bn`` (not in the
            paper; it lets the small from-scratch models train in minutes). fc6, fc7 and the
            extras stay without it.
    """

    def __init__(self, width: int = 64, extra_layers: Sequence[Sequence[int]] = EXTRAS_300,
                 l2norm_scale: float = 20.0, batch_norm: bool = False):
        super().__init__()
        # l2norm first: the state dict then lists tensors in torchvision's order.
        self.l2norm = L2Norm(_channels(512, width), l2norm_scale)
        self.features = _vgg_features(width, batch_norm)
        self.extra = nn.ModuleList([_conv5_fc7(width, batch_norm)])
        in_channels = _channels(1024, width)
        self.out_channels = [_channels(512, width), in_channels]
        for spec in extra_layers:
            layer = ExtraLayer(*spec)
            mid, out = _channels(layer.mid_channels, width), _channels(layer.out_channels, width)
            self.extra.append(nn.Sequential(
                nn.Conv2d(in_channels, mid, 1), nn.ReLU(inplace=True),
                nn.Conv2d(mid, out, layer.kernel_size, stride=layer.stride, padding=layer.padding),
                nn.ReLU(inplace=True)))
            self.out_channels.append(out)
            in_channels = out
        self._init_weights()

    def _init_weights(self) -> None:
        # VGG convs: torchvision's VGG init (He, fan_out); fc6, fc7 and the extras: Xavier
        # uniform with zero bias (torchvision's _xavier_init, ssd.pytorch's weights_init).
        for module in self.features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        for i, block in enumerate(self.extra):
            for module in block.modules():
                if isinstance(module, nn.Conv2d):
                    if i == 0 and module.kernel_size == (3, 3) and module.dilation == (1, 1):  # conv5_x
                        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                    else:
                        nn.init.xavier_uniform_(module.weight)
                    nn.init.zeros_(module.bias)

    def forward(self, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) normalised images -> per level (B, C_l, H_l, W_l): conv4_3 (L2-normed),
        fc7, then one map per extra layer."""
        x = self.features(images)
        outputs = [self.l2norm(x)]
        for block in self.extra:
            x = block(x)
            outputs.append(x)
        return outputs

    def feature_sizes(self, image_size: int) -> list[int]:
        """Side of each output map for a square input of ``image_size`` pixels, by conv
        arithmetic over the layers in order (no forward pass)."""
        side = image_size
        sizes = []
        for block in [self.features, *self.extra]:
            for module in block.modules():
                if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
                    side = _output_side(side, module)
            sizes.append(side)
        return sizes

    def freeze(self, trainable_layers: int) -> None:
        """Freeze the first 5 - ``trainable_layers`` VGG stages (conv1_x .. conv5_x);
        torchvision's ``trainable_backbone_layers``."""
        if not 0 <= trainable_layers <= 5:
            raise ValueError(f"trainable_layers must be in 0..5, got {trainable_layers}")
        stage_modules = _stages(self)
        for stage in stage_modules[: 5 - trainable_layers]:
            for module in stage:
                for parameter in module.parameters():
                    parameter.requires_grad_(False)


def _output_side(side: int, module: nn.Module) -> int:
    def pair(v):
        return v[0] if isinstance(v, tuple) else v
    kernel, stride, padding, dilation = (pair(module.kernel_size), pair(module.stride), pair(module.padding),
                                         pair(module.dilation))
    span = (side + 2 * padding - dilation * (kernel - 1) - 1) / stride
    return (math.ceil(span) if getattr(module, "ceil_mode", False) else math.floor(span)) + 1


def _stages(backbone: SSDVGG16) -> list[list[nn.Module]]:
    """The convs of conv1_x, conv2_x, conv3_x, conv4_x (in ``features``) and conv5_x."""
    stages: list[list[nn.Module]] = [[]]
    for module in backbone.features:
        if isinstance(module, nn.MaxPool2d):
            stages.append([])
        elif isinstance(module, nn.Conv2d):
            stages[-1].append(module)
    stages.append([m for m in backbone.extra[0] if isinstance(m, nn.Conv2d)])
    return stages


def _torchvision_vgg16_prefixes(batch_norm: bool) -> list[str]:
    """Module names of conv1_1..conv5_3 (each followed by its BatchNorm with ``batch_norm``) in
    torchvision's ``vgg16`` / ``vgg16_bn`` ``features`` (its ``make_layers`` numbering)."""
    prefixes, index = [], 0
    for entry in _VGG_TO_CONV4_3 + ("M", 512, 512, 512):
        if entry in ("M", "C"):
            index += 1
            continue
        prefixes.append(f"features.{index}")
        if batch_norm:
            prefixes.append(f"features.{index + 1}")
        index += 3 if batch_norm else 2
    return prefixes


def _own_vgg_prefixes(backbone: SSDVGG16) -> list[str]:
    """Our conv1_1..conv5_3 (and BatchNorm) module names, in order."""
    fc = backbone.extra[0][-1]
    return [name for name, module in backbone.named_modules()
            if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)) and name.startswith(("features.", "extra.0."))
            and not any(module is m for m in fc.modules())]


def load_vgg16_weights(backbone: SSDVGG16, state_dict_or_path: dict | str | Path) -> None:
    """Load torchvision ``vgg16`` (or ``vgg16_bn`` for a batch-norm backbone) ImageNet weights,
    a state dict or a ``.pth`` / ``.safetensors`` file, into conv1_1..conv5_3. fc6 and fc7 keep
    their initialisation: the paper subsamples VGG's fc6/fc7 into them, torchvision's
    ssd300_vgg16 does not.

    Raises:
        UserError listing missing keys and shape mismatches; nothing is loaded then.
    """
    source = state_dict_or_path
    state = load_state_dict_file(source) if isinstance(source, (str, Path)) else source
    name = str(source) if isinstance(source, (str, Path)) else "state dict"
    batch_norm = any(isinstance(m, nn.BatchNorm2d) for m in backbone.features)
    own = backbone.state_dict()
    wanted = {}  # our key -> the file's key
    for ours, theirs in zip(_own_vgg_prefixes(backbone), _torchvision_vgg16_prefixes(batch_norm), strict=True):
        for key in own:
            if key.startswith(ours + "."):
                wanted[key] = theirs + key[len(ours):]
    missing = sorted(src for src in wanted.values() if src not in state)
    mismatched = sorted(f"{src}: file {tuple(state[src].shape)} vs model {tuple(own[dst].shape)}"
                        for dst, src in wanted.items() if src in state and state[src].shape != own[dst].shape)
    if missing or mismatched:
        kind = "vgg16_bn" if batch_norm else "vgg16"
        raise UserError(f"{name}: not torchvision {kind} weights for this SSD backbone (width 64 needed); "
                         f"nothing was loaded. missing: {missing[:6]}; shape mismatch: {mismatched[:3]}")
    backbone.load_state_dict({dst: state[src] for dst, src in wanted.items()}, strict=False)
