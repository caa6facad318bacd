"""Numeric precision of the network: fp32, or bf16 / fp16 autocast around the network parts only.

``run.precision`` / ``--precision`` (train, evaluate, predict, benchmark, ``Predictor``):

* ``fp32``: everything in float32 (the default: results never change silently).
* ``bf16``: ``torch.autocast(bfloat16)`` around the network: on CPU where the CPU computes
  bf16 natively (AVX512_BF16 or AMX-BF16; elsewhere oneDNN emulates it, slower than fp32, so
  the run falls back to fp32 and says so in one line), on CUDA where the GPU supports it.
* ``fp16``: CUDA autocast with a ``GradScaler`` for training; on a CPU it falls back to fp32
  with one line (CPU fp16 convolutions are not faster than fp32 in PyTorch's oneDNN paths).
* ``auto``: bf16 where the device computes it natively, else fp32, without a line: what the
  digits presets use (a preset that should run fast on any machine, measured in BENCHMARKS.md).
  The precision that ran is in the run's metrics.jsonl and checkpoints.

Only the network runs in lower precision: the detector's ``network_parts`` (backbone, FPN,
heads, RPN head, RoI head) run under autocast and their outputs are cast back to float32 at
the part's boundary (``apply_precision`` installs forward hooks; state-dict keys do not change).
Anchors, box coding, matching, losses, NMS, RoI pooling and evaluation therefore stay in float32.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from anchordet.config.schema import PRECISIONS
from anchordet.detectors.base import network_parts

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# What runs under autocast: the detector's network parts (``Detector.network_parts``).
# Everything between and after them (anchors, RoI pooling, losses, post-processing) is float32.


# ---------------------------------------------------------------------------------- capability


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (Linux); elsewhere torch's view of the
    capabilities it dispatches on (``torch.backends.cpu`` / ``torch.cpu``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    capabilities = getattr(torch.cpu, "get_capabilities", lambda: {})()  # private in some releases
    return frozenset(k for k, v in capabilities.items() if v)


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 arithmetic (AVX512_BF16 dot products or AMX-BF16 tiles) and
    torch's oneDNN can use it; without it oneDNN converts in software and bf16 is slower than fp32."""
    if not torch.backends.mkldnn.is_available():
        return False
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def cuda_supports(precision: str, device: torch.device) -> bool:
    if precision == "fp16":
        return True
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else False


# ---------------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Precision:
    """What runs: ``name`` ("fp32", "bf16", "fp16") on ``device_type`` ("cpu", "cuda").
    ``requested`` is what was asked for; ``note`` the one-line reason when they differ."""

    name: str = "fp32"
    device_type: str = "cpu"
    requested: str = "fp32"
    note: str | None = None

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, None for fp32."""
        return DTYPES.get(self.name)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self):
        """The autocast context of this precision (a disabled one for fp32)."""
        return torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=self.enabled)

    def grad_scaler(self):
        """A ``GradScaler`` for fp16 on CUDA (fp16 gradients underflow without loss scaling);
        None otherwise (bf16 has fp32's exponent range)."""
        if self.name == "fp16" and self.device_type == "cuda":
            return torch.amp.GradScaler("cuda")
        return None


def _stderr_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_precision(requested: str, device: torch.device | str,
                      say: Callable[[str], None] | None = _stderr_line) -> Precision:
    """The precision that runs for ``requested`` on ``device``: ``requested`` itself where the
    device computes it natively, else fp32 with one line through ``say`` (None: silent) naming
    why; "auto" is bf16 where that is native, else fp32, silently. Raises ValueError for a name
    that is not one of PRECISIONS."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r} is not one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if requested == "auto":
        native = _unsupported_reason("bf16", device) is None
        return Precision("bf16" if native else "fp32", device.type, requested)
    reason = _unsupported_reason(requested, device)
    if reason is None:
        return Precision(requested, device.type, requested)
    note = f"precision {requested}: {reason}; running in fp32"
    if say is not None:
        say(note)
    return Precision("fp32", device.type, requested, note)


def _unsupported_reason(requested: str, device: torch.device) -> str | None:
    if requested == "fp32":
        return None
    if device.type == "cuda":
        return None if cuda_supports(requested, device) else f"{torch.cuda.get_device_name(device)} has no bf16"
    if device.type != "cpu":
        return f"no autocast support on {device.type} here"
    if requested == "fp16":
        return "fp16 autocast is for CUDA GPUs (on a CPU use bf16 where it has AVX512_BF16 or AMX)"
    if not cpu_has_native_bf16():
        return "this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag), where bf16 is slower than fp32"
    return None


# ---------------------------------------------------------------------------------- the network


class _AutocastRegion:
    """Forward hooks that run one module under autocast and cast its floating outputs to float32.

    The pre-hook enters the autocast context, the (always-called) forward hook leaves it, also
    when the forward raises, so autocast never leaks past the module."""

    def __init__(self, precision: Precision):
        self.precision = precision
        self._open: list = []

    def enter(self, module: nn.Module, args) -> None:
        context = self.precision.autocast()
        context.__enter__()
        self._open.append(context)

    def leave(self, module: nn.Module, args, output):
        self._open.pop().__exit__(None, None, None)
        return to_float32(output)


class _Float32WhereOneDNNFails:
    """Forward hooks that run one strided convolution in float32 (autocast off) for inputs one
    pixel wide or high, on CPU.

    torch 2.14.1's oneDNN bf16 weight gradient of a convolution with a kernel and a stride above
    1 is garbage (uninitialised memory, up to 1e37, different on every call) when the input is
    one pixel wide: measured on an Intel Xeon with AMX for 3x3 / 5x5 kernels, strides 2 / 3,
    heights 1..16, NCHW and channels_last (a 1 x N input was fine; the guard takes either side to
    be safe). RetinaNet's P7 conv meets it whenever P6 is one pixel wide (images up to 64 px), and
    it made a bf16 test's weights non-finite now and then. These convolutions cost nothing: their
    outputs are a pixel or two."""

    def __init__(self):
        self._open: list = []

    def enter(self, module: nn.Module, args):
        x = args[0]
        if x.device.type == "cpu" and min(x.shape[-2:]) == 1:
            context = torch.autocast("cpu", enabled=False)
            context.__enter__()
            self._open.append(context)
            return (x.float(), *args[1:])
        self._open.append(None)
        return None

    def leave(self, module: nn.Module, args, output):
        context = self._open.pop()
        if context is not None:
            context.__exit__(None, None, None)
        return output


def _strided_convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)
            and max(m.stride) > 1 and max(m.kernel_size) > 1]


def to_float32(value: Any) -> Any:
    """``value`` with every bf16 / fp16 tensor in it (tensors, lists, tuples, named tuples,
    dicts, nested) cast to float32; other values as they are."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple
        return type(value)(*(to_float32(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: to_float32(v) for k, v in value.items()}
    return value


def apply_precision(model: nn.Module, precision: Precision, parts: tuple[str, ...] | None = None) -> nn.Module:
    """Run ``model``'s network parts (``parts``, default the detector's own ``network_parts``) in
    ``precision`` (replacing an earlier call's setting; fp32 removes it). Returns ``model``. Raises ValueError when lower precision is asked for a
    model with none of the parts (it would silently run in fp32)."""
    for handle in getattr(model, "_anchordet_precision_hooks", ()):
        handle.remove()
    model._anchordet_precision_hooks = []
    model.anchordet_precision = precision
    if not precision.enabled:
        return model
    found = network_parts(model, parts)
    if not found:
        raise ValueError(f"{type(model).__name__} has none of the network parts {list(parts or ())}: "
                         f"precision {precision.name} would not apply")
    for module in found.values():
        region = _AutocastRegion(precision)
        model._anchordet_precision_hooks += [module.register_forward_pre_hook(region.enter),
                                             module.register_forward_hook(region.leave, always_call=True)]
        for conv in _strided_convs(module):
            guard = _Float32WhereOneDNNFails()
            model._anchordet_precision_hooks += [conv.register_forward_pre_hook(guard.enter),
                                                 conv.register_forward_hook(guard.leave, always_call=True)]
    return model


def precision_of(model: nn.Module) -> Precision:
    """The precision ``apply_precision`` set on ``model`` (fp32 when never set)."""
    return getattr(model, "anchordet_precision", Precision())
