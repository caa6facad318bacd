"""Batch norm folded into the preceding convolution.

A frozen batch norm (or a ``BatchNorm2d`` in eval mode) after a convolution is an affine map per
output channel, ``y = conv(x, W) * s + t`` with ``s = gamma / sqrt(var + eps)`` and
``t = beta - mean * s``, which equals ``conv(x, W * s) + t``. Running the folded form saves two
full passes over every activation (and their backward), the ``mul`` and ``add`` that torchvision's
``FrozenBatchNorm2d`` spends (benchmarks/speed.py: about 14% of a ResNet-50-FPN RetinaNet forward
on CPU). The scaled weight is computed at every call, so gradients reach ``W`` as before and the
modules and their state-dict keys stay as they are (torchvision's ImageNet weights still load).

Folding is exact in real arithmetic but rounds differently (about 1e-6 relative on the features),
so a torchvision-converted detector no longer reproduces torchvision's detections to the last bit
(boxes within ~1e-3 px). It is off in a built model and in training (``ResNet(fold_bn=True)`` or
``fold_batch_norms(model)`` turn it on), and on by default for inference in ``anchordet predict`` /
``evaluate`` / ``anchordet.load`` (``anchordet.runtime.acceleration``: measured faster, BENCHMARKS.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d


def bn_affine(bn: nn.Module) -> tuple[Tensor, Tensor]:
    """Per-channel ``(scale, shift)`` (C,) of a ``FrozenBatchNorm2d`` or an eval-mode
    ``BatchNorm2d`` with running statistics: ``bn(x) == x * scale + shift``."""
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    return scale, bn.bias - bn.running_mean * scale


def can_fold(bn: nn.Module) -> bool:
    """True when ``bn`` is a fixed affine map: frozen, or a BatchNorm2d that uses its running
    statistics (eval mode). A training BatchNorm2d normalizes by batch statistics: no fold."""
    if isinstance(bn, FrozenBatchNorm2d):
        return True
    return (isinstance(bn, nn.BatchNorm2d) and not bn.training and bn.track_running_stats
            and bn.running_mean is not None and bn.affine)


def conv_bn(x: Tensor, conv: nn.Conv2d, bn: nn.Module) -> Tensor:
    """``bn(conv(x))`` computed as one convolution with the batch norm folded in when
    ``can_fold(bn)``, else as the two modules. x: (B, C_in, H, W) -> (B, C_out, H', W')."""
    if not can_fold(bn) or conv.padding_mode != "zeros":
        return bn(conv(x))
    scale, shift = bn_affine(bn)
    weight = conv.weight * scale.to(conv.weight.dtype)[:, None, None, None]
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return F.conv2d(x, weight, bias.to(conv.weight.dtype), conv.stride, conv.padding, conv.dilation, conv.groups)


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    """A new ``Conv2d`` (with bias) equal to ``bn(conv(x))``: for export or a deployed model.
    Raises ValueError when ``bn`` is a training ``BatchNorm2d`` (not a fixed map)."""
    if not can_fold(bn):
        raise ValueError(f"cannot fold {type(bn).__name__} in training mode: it uses batch statistics")
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    scale, shift = bn_affine(bn)
    fused.weight.copy_(conv.weight * scale[:, None, None, None])
    fused.bias.copy_(shift if conv.bias is None else conv.bias * scale + shift)
    return fused


def fold_batch_norms(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Turn BN folding on (or off) in every module of ``model`` that supports it (those with a
    ``fold_bn`` instance attribute: the ResNet and its blocks, ``ResNet(fold_bn=...)`` at
    construction). Works for training too: a frozen BN stays frozen and the conv weights get the
    same gradients. Returns ``model``."""
    found = False
    for module in model.modules():
        if hasattr(module, "fold_bn"):
            module.fold_bn = enabled
            found = True
    if not found:
        raise ValueError(f"{type(model).__name__} has no module that folds batch norms (a ResNet backbone)")
    return model
