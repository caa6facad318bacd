"""How a detector's network runs fast: memory format, BN folding and precision, one call each for
training and for inference.

* **channels_last** (``run.channels_last`` / ``--channels-last``: ``auto``, ``true``, ``false``):
  the weights in NHWC order, so oneDNN (CPU) and cuDNN (GPU) pick their NHWC convolution
  kernels and every activation after the first convolution stays NHWC. ``auto`` turns it on
  where it was measured faster (``CHANNELS_LAST_FASTER``; BENCHMARKS.md "channels_last, bf16
  and BN folding per family"); detections equal the NCHW run's within float rounding (tested).
* **BN folding** (``anchordet.ops.fuse.fold_batch_norms``): a frozen or eval-mode batch norm
  computed inside its convolution. For inference it is on by default where the backbone
  supports it (the ResNets): RetinaNet R50-FPN inference 1.13-1.17x faster in fp32, 1.96x in
  bf16 (an unfolded frozen BN promotes bf16 activations back to fp32), at a cost of float rounding
  (boxes of a torchvision-converted model move by up to 1e-3 px, see ``tests/interop``).
* **precision**: ``anchordet.runtime.precision``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from anchordet.detectors.base import Detector
from anchordet.runtime.precision import Precision, apply_precision, resolve_precision

# channels_last against NCHW, per detector family (``Detector.family``), on each device type: True where it was faster
# in every measured configuration (inference and training step, fp32 and bf16, 1 thread).
# CPU (Intel Xeon with AVX-512 / AMX, 2026-12-01, BENCHMARKS.md "Precision, channels_last and BN
# folding"): fp32 RetinaNet 1.04-1.36x (R50-FPN and the digits presets), SSD 1.11-1.30x, Faster
# R-CNN 1.11-1.17x, more in bf16; the Zen 5 figures agree (1.15-1.49x). CUDA: NHWC is what
# tensor cores want (cuDNN's guidance; not measured here: benchmarks/gpu_check.sh).
CHANNELS_LAST_FASTER: dict[str, dict[str, bool]] = {
    "cpu": {"retinanet": True, "ssd": True, "faster_rcnn": True},
    "cuda": {"retinanet": True, "ssd": True, "faster_rcnn": True},
}

# BN folding at inference where a module supports it (the ResNet backbones): see the docstring.
FOLD_BN_FOR_INFERENCE = True


def resolve_channels_last(setting: bool | str, model: nn.Module, device: torch.device | str,
                          training: bool = False, say: Callable[[str], None] | None = None) -> bool:
    """``setting`` True / False as given; "auto": the measured default of ``model``'s family on
    ``device`` (off for a family never measured). Either way off for CPU training of a model with
    a convolution that oneDNN's NHWC backward crashes on (``nhwc_backward_crashing_convs``): silently
    for "auto", with one line through ``say`` for an explicit True (never abort the process)."""
    device_type = torch.device(device).type
    crashing = nhwc_backward_crashing_convs(model) if training and device_type == "cpu" else []
    if setting == "auto":
        return not crashing and CHANNELS_LAST_FASTER.get(device_type, {}).get(_family(model), False)
    if setting and crashing:
        if say is not None:
            say(f"run.channels_last: {crashing[0]} is a 1x1 stride-2 convolution with fewer than 16 input "
                f"channels, whose channels_last backward crashes oneDNN on CPUs; training NCHW")
        return False
    return bool(setting)


def _family(model: nn.Module) -> str:
    """The detector's family; "" for a model that is not an anchordet detector (never measured)."""
    return model.family if isinstance(model, Detector) else ""


def nhwc_backward_crashing_convs(model: nn.Module) -> list[str]:
    """The names of ``model``'s 1x1 stride-2 convolutions with fewer than 16 input channels (a
    narrow ResNet's downsample). With torch 2.14.1 on an Intel Xeon (AVX-512 / AMX, 2026-12-01)
    the backward of such a convolution in channels_last segfaults the process from 64x64
    inputs on (``Conv2d(8, 16, 1, 2)`` on a (4, 8, 64, 64) NHWC input; 16 or more input channels
    never did, contiguous inputs never do), so "auto" keeps these models contiguous for CPU
    training. The detectors of the presets (ResNet width >= 16) are not affected."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride == (2, 2) and m.in_channels < 16]


def use_channels_last(model: nn.Module, enabled: bool) -> nn.Module:
    """Every 4-D parameter and buffer of ``model`` in channels_last order (``enabled``) or back
    in the default order; the parameters stay the same objects (optimizers keep them)."""
    return model.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)


def can_fold_bn(model: nn.Module, training: bool = False) -> bool:
    """True when some module of ``model`` can run its batch norms folded (has ``fold_bn``) and
    has a batch norm that is a fixed map in that mode: a frozen one, or for inference
    (``training`` False) also a BatchNorm2d with running statistics."""
    from torchvision.ops import FrozenBatchNorm2d

    folding = [m for m in model.modules() if hasattr(m, "fold_bn")]
    norms = [n for m in folding for n in m.modules()
             if isinstance(n, FrozenBatchNorm2d) or (not training and isinstance(n, nn.BatchNorm2d)
                                                    and n.track_running_stats)]
    return bool(norms)


def set_fold_bn(model: nn.Module, enabled: bool) -> nn.Module:
    """BN folding on or off where ``model`` supports it (nothing to do elsewhere)."""
    if can_fold_bn(model):
        from anchordet.ops.fuse import fold_batch_norms

        fold_batch_norms(model, enabled)
    return model


def accelerate_for_training(model: nn.Module, device: torch.device, precision: str = "fp32",
                            channels_last: bool | str = "auto", say=None) -> Precision:
    """Set ``model`` (already on ``device``) up for training: memory format and precision.
    BN folding is left as the model has it (a trainable BN cannot be folded). Returns the
    precision that runs (``resolve_precision``; ``say`` gets its fallback line)."""
    use_channels_last(model, resolve_channels_last(channels_last, model, device, training=True, say=say))
    resolved = resolve_precision(precision, device, **({} if say is None else {"say": say}))
    apply_precision(model, resolved)
    return resolved


def accelerate_for_inference(model: nn.Module, device: torch.device | str, precision: str | Precision = "fp32",
                             channels_last: bool | str = "auto", fold_bn: bool | str = "auto") -> nn.Module:
    """Set an eval-mode ``model`` on ``device`` up for inference: channels_last (``auto``: the
    measured default), BN folding (``auto``: ``FOLD_BN_FOR_INFERENCE`` where supported) and
    precision (a name, resolved with its one-line fallback, or a resolved ``Precision``).
    Returns ``model``."""
    use_channels_last(model, resolve_channels_last(channels_last, model, device))
    set_fold_bn(model, FOLD_BN_FOR_INFERENCE if fold_bn == "auto" else bool(fold_bn))
    resolved = precision if isinstance(precision, Precision) else resolve_precision(precision, device)
    apply_precision(model, resolved)
    return model


def fixed_input_size(data) -> bool:
    """True when every training image of a ``DataConfig`` has one size: a fixed-size transform,
    or a keep-ratio resize to min_size == max_size of square scenes (the digits dataset)."""
    if data.train_transform in ("fixed", "ssd"):
        return True
    sizes = set(data.min_size) if isinstance(data.min_size, tuple) else {data.min_size}  # multi-scale: a list
    return data.dataset == "digits" and sizes == {data.max_size}


def configure_cuda(device: torch.device, fixed_size: bool) -> None:
    """On CUDA with one input size, let cuDNN time its convolution algorithms once per shape and
    keep the fastest (``cudnn.benchmark``); with varying sizes every new shape would be re-timed,
    so it stays off. Nothing to do on other devices."""
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = bool(fixed_size)
