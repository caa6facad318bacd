"""Speed of one detector in several set-ups, side by side: what ``anchordet benchmark`` measures.

For each variant (precision x channels_last x BN folding x batch size) and mode (``infer``:
``predict``; ``train``: ``loss`` + backward + SGD step): the median call time over ``repeats``
interleaved rounds (A, B, C, A, B, C, ...: load from other processes hits every variant alike),
images/s, the share of the call spent inside the network modules (backbone, FPN, heads: forward
hooks), the network's achieved GFLOP/s against the machine's measured peak (a large matmul in the
same precision), and the peak memory of the first call. FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; a multiply-add is
2 FLOPs).

Peak memory: CUDA ``max_memory_allocated`` above the allocation before the call; CPU the
resident set's high-water mark during the call (reset through ``/proc/self/clear_refs``, Linux)
above the resident size before it. Measured in one process after the other variants ran, so it
is indicative (benchmarks/speed.py measures each model in a fresh process).
"""
from __future__ import annotations

import copy
import itertools
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from anchordet.runtime.acceleration import (can_fold_bn, configure_cuda, resolve_channels_last, set_fold_bn,
                                           use_channels_last)
from anchordet.detectors.base import network_parts
from anchordet.runtime.precision import Precision, apply_precision, cpu_flags, resolve_precision

# The flags that decide which kernels run (shown with the results).
SHOWN_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                   "amx_fp16")


@dataclass(frozen=True)
class Variant:
    """One set-up: ``precision`` as resolved (``requested`` as asked), memory format, BN folding
    and batch size."""

    precision: Precision
    channels_last: bool
    fold_bn: bool
    batch_size: int

    @property
    def label(self) -> str:
        name = self.precision.name + (f" ({self.precision.requested} fell back)" if self.precision.note else "")
        return f"{name}, {'channels_last' if self.channels_last else 'NCHW'}{', BN folded' if self.fold_bn else ''}"


@dataclass
class Row:
    """One variant's figures in one mode (times in seconds, memory in MiB, FLOPs in GFLOP)."""

    mode: str
    label: str
    precision: str
    channels_last: bool
    fold_bn: bool
    batch_size: int
    median_s: float
    min_s: float
    max_s: float
    images_per_s: float
    network_share: float
    gflop_per_image: float
    network_gflop_per_s: float
    peak_gflop_per_s: float
    peak_memory_mib: float
    calls_s: list[float] = field(default_factory=list)

    @property
    def of_peak(self) -> float:
        return self.network_gflop_per_s / self.peak_gflop_per_s if self.peak_gflop_per_s else float("nan")


# ---------------------------------------------------------------------------------- the machine


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    """Device name, CPU model and the kernel-relevant CPU flags, threads, torch version."""
    info = {"device": str(device), "cpu": cpu_model_name(),
            "cpu_flags": [f for f in SHOWN_CPU_FLAGS if f in cpu_flags()],
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "mkldnn": torch.backends.mkldnn.is_available()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def matmul_peak_gflops(precision: Precision, device: torch.device, size: int | None = None, repeats: int = 3) -> float:
    """The machine's achievable GFLOP/s in ``precision``: the best of ``repeats`` products of two
    ``size`` x ``size`` matrices in its dtype (bf16 / fp16 tensors, as autocast computes them)."""
    size = size or (8192 if device.type == "cuda" else 2048)
    dtype = precision.dtype or torch.float32
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    torch.mm(a, b)  # warm-up (oneDNN / cuBLAS set-up)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------- inputs


def synthetic_batch(batch_size: int, height: int, width: int, num_classes: int, device: torch.device, seed: int = 0):
    """Images (B, 3, H, W) in [0, 1] and per image 4 random boxes (at least 16 px) with labels
    0..num_classes-1: enough to run ``loss`` as training would."""
    from anchordet.structures.targets import Targets

    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, height, width, generator=generator)
    targets = []
    size = torch.tensor([width, height], dtype=torch.float32)
    for _ in range(batch_size):
        wh = torch.rand(4, 2, generator=generator) * (size * 0.4) + 16
        xy = torch.rand(4, 2, generator=generator) * (size - wh).clamp(min=1)
        labels = torch.randint(0, num_classes, (4,), generator=generator)
        targets.append(Targets(torch.cat([xy, xy + wh], 1), labels, torch.zeros(4, dtype=torch.bool)))
    return images.to(device), [t.to(device) for t in targets]


# ---------------------------------------------------------------------------------- counting


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    return (sum(p.numel() for p in model.parameters()),
            sum(p.numel() for p in model.parameters() if p.requires_grad))


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of ``call()`` as ``FlopCounterMode`` counts them (convolutions and matrix products,
    forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        call()
    return int(counter.get_total_flops())


class _NetworkClock:
    """Forward hooks that add up the time spent inside the network modules."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.device, self.seconds, self._starts = device, 0.0, {}
        self._handles = []
        for module in network_parts(model).values():
            self._handles += [module.register_forward_pre_hook(self._enter),
                              module.register_forward_hook(self._leave, always_call=True)]

    def _enter(self, module, args):
        _sync(self.device)
        self._starts[id(module)] = time.perf_counter()

    def _leave(self, module, args, output):
        _sync(self.device)
        self.seconds += time.perf_counter() - self._starts.pop(id(module))

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


class PeakMemory:
    """The memory one call adds at its peak, in MiB (see the module docstring)."""

    def __init__(self, device: torch.device):
        self.device, self.mib = device, float("nan")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
        else:
            self._before = self._reset_cpu_high_water()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = (torch.cuda.max_memory_allocated(self.device) - self._before) / 2 ** 20
        elif self._before is not None:
            self.mib = (_status_kib("VmHWM") - self._before) / 1024

    @staticmethod
    def _reset_cpu_high_water() -> int | None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current resident size
            return _status_kib("VmRSS")
        except OSError:
            return None  # not Linux, or not allowed: no CPU memory figure


def _status_kib(name: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(name + ":"))


# ---------------------------------------------------------------------------------- running


class _Runner:
    """One variant's model, inputs and calls."""

    def __init__(self, base: nn.Module, variant: Variant, mode: str, size: tuple[int, int], device: torch.device):
        self.variant, self.mode, self.device = variant, mode, device
        self.model = copy.deepcopy(base).to(device)
        use_channels_last(self.model, variant.channels_last)
        set_fold_bn(self.model, variant.fold_bn)
        apply_precision(self.model, variant.precision)
        self.model.train(mode == "train")
        self.images, self.targets = synthetic_batch(variant.batch_size, *size, base.num_classes, device)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(trainable, lr=1e-6, momentum=0.9) if mode == "train" else None
        self.scaler = variant.precision.grad_scaler() if mode == "train" else None
        self.clock = _NetworkClock(self.model, device)

    def call(self) -> float:
        """One call; returns when its forward ended (``time.perf_counter``)."""
        if self.mode == "infer":
            self.model.predict(self.images)
            _sync(self.device)
            return time.perf_counter()
        loss = sum(self.model.loss(self.images, self.targets).values())
        _sync(self.device)
        forward_done = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return forward_done

    def timed(self) -> tuple[float, float]:
        """(seconds of one call, seconds of it outside the network: the forward's time outside
        the network modules; backward and the optimizer step count as network)."""
        self.clock.seconds = 0.0
        _sync(self.device)
        start = time.perf_counter()
        forward_done = self.call()
        _sync(self.device)
        return time.perf_counter() - start, forward_done - start - self.clock.seconds


def make_variants(precisions: list[str], channels_last: list[str], fold_bn: list[str], batch_sizes: list[int],
                  model: nn.Module, device: torch.device, mode: str, say=None) -> list[Variant]:
    """The distinct variants of the option lists for ``model`` on ``device`` ("auto" resolved as
    training / inference would; a fallback precision that equals another variant is dropped;
    training on a CPU stays NCHW where ``nhwc_backward_crashing_convs`` finds any)."""
    variants: list[Variant] = []
    for name, layout, fold, batch in itertools.product(precisions, channels_last, fold_bn, batch_sizes):
        precision = resolve_precision(name, device, **({} if say is None else {"say": say}))
        setting = "auto" if layout == "auto" else layout == "on"
        foldable = can_fold_bn(model, training=mode == "train")
        folded = foldable and (mode == "infer" if fold == "auto" else fold == "on")
        variant = Variant(precision, resolve_channels_last(setting, model, device, training=mode == "train"), folded,
                          batch)
        if not any(_same(variant, v) for v in variants):
            variants.append(variant)
    return variants


def _same(a: Variant, b: Variant) -> bool:
    return (a.precision.name, a.channels_last, a.fold_bn, a.batch_size) == (b.precision.name, b.channels_last,
                                                                            b.fold_bn, b.batch_size)


def benchmark(model: nn.Module, variants: list[Variant], mode: str, size: tuple[int, int], device: torch.device,
              repeats: int = 5, warmup: int = 1, peaks: dict[str, float] | None = None) -> list[Row]:
    """Time ``variants`` of ``model`` in ``mode`` ("infer" or "train") on (H, W) = ``size``
    images, interleaved. ``peaks``: the measured matmul GFLOP/s per precision name (filled in
    here when missing)."""
    peaks = {} if peaks is None else peaks
    runners = [_Runner(model, v, mode, size, device) for v in variants]
    flops_per_image, memory = {}, {}
    for runner in runners:
        with PeakMemory(device) as peak:  # the first call: one-time allocations count, as for a user
            runner.call()
        memory[runner.variant] = peak.mib
        for _ in range(warmup - 1):
            runner.call()
        flops_per_image[runner.variant] = count_flops(runner.call) / runner.variant.batch_size
    times: dict[Variant, list[tuple[float, float]]] = {r.variant: [] for r in runners}
    for _ in range(repeats):
        for runner in runners:
            times[runner.variant].append(runner.timed())
    rows = []
    for runner in runners:
        variant = runner.variant
        runner.clock.close()
        if variant.precision.name not in peaks:
            peaks[variant.precision.name] = matmul_peak_gflops(variant.precision, device)
        totals = [t for t, _ in times[variant]]
        median = statistics.median(totals)
        network = median - statistics.median(o for _, o in times[variant])
        gflop = flops_per_image[variant] / 1e9
        rows.append(Row(mode, variant.label, variant.precision.name, variant.channels_last, variant.fold_bn,
                        variant.batch_size, median, min(totals), max(totals), variant.batch_size / median,
                        network / median, gflop, gflop * variant.batch_size / max(network, 1e-12),
                        peaks[variant.precision.name], memory[variant], totals))
    return rows


def rows_as_dicts(rows: list[Row]) -> list[dict]:
    return [{**asdict(r), "of_peak": r.of_peak} for r in rows]
