"""Speed of anchordet's detectors side by side with torchvision's, in one run.

    OMP_NUM_THREADS=1 python benchmarks/speed.py [--models retinanet ssd frcnn] [--threads 1]
        [--repeats 5] [--train-repeats 3] [--setups fp32 fp32+cl bf16+cl] [--no-memory | --memory-only]
        [--device cpu|cuda]

Pairs (issue 9): RetinaNet-R50-FPN 2x3x640x832 (torchvision's weights converted with
``from_torchvision``: identical weights), SSD300-VGG16 8x3x300x300 (identical weights),
Faster R-CNN: ours R50-C4 against torchvision's R50-FPN 1x3x800x800 (the nearest model a user
would pick; different networks, different weights). For the ResNet models "ours+fold" is ours
after ``anchordet.ops.fuse.fold_batch_norms`` (frozen BN folded into the convs; the default of
``anchordet predict`` / ``anchordet.load``); for fp32 inference on CPU "ours+jit" is
``anchordet.export.optimize.optimize_for_cpu_inference`` (opt-in).

Set-ups (issue 21), applied alike to both sides: "fp32" (NCHW, what torchvision runs by default),
"fp32+cl" (channels_last weights: NHWC convolution kernels), "bf16+cl" / "fp16+cl" (autocast
around the network modules only: backbone, FPN, heads; their outputs cast back to float32, so
anchors, losses and post-processing stay fp32: ``anchordet.runtime.precision.apply_precision``
with each side's module names). Every row gives ours against torchvision in the same set-up and
against torchvision's fp32 NCHW (the issue's baseline), and the network part's achieved GFLOP/s
against the machine's peak (``anchordet.runtime.benchmark.matmul_peak_gflops``: a 2048^2 matmul
in the same precision; FLOPs of one call by ``torch.utils.flop_counter``).

torchvision's models are built as its factories build them for training from ImageNet or COCO
weights (FrozenBatchNorm2d, 3 trainable ResNet stages), without loading weights, and with
``min_size`` / ``max_size`` equal to the input size so its internal transform does not change the
resolution. Heads' class biases are set so that scores cross the threshold as with trained weights
(otherwise every random-init score is ~0.01 and post-processing has nothing to do).

Timing: A, B, A, B, ... in one process (shared load hits both alike), medians after one warm-up
call each. A training step is loss + backward + SGD step. "outside" is the part of the call not
spent inside the network modules' forward (backbone, FPN, heads; hooks on them), nor in backward
and the optimizer step: anchors, targets, losses, post-processing, input handling (and for
Faster R-CNN, proposals, RoI sampling and RoI pooling).
Peak memory: each (model, set-up, mode) in a fresh subprocess, the first call after building: the
resident set's high-water mark during the call minus the resident size before it (CPU; the mark
is reset through /proc/self/clear_refs), or torch.cuda.max_memory_allocated (GPU).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

SIZES = {"retinanet": (2, 640, 832), "ssd": (8, 300, 300), "frcnn": (1, 800, 800)}


# ----------------------------------------------------------------------------------------------
# models


def _frozen_resnet50():
    from torchvision.models import resnet50
    from torchvision.ops import FrozenBatchNorm2d

    return resnet50(weights=None, norm_layer=FrozenBatchNorm2d)


def tv_retinanet(height: int, width: int) -> nn.Module:
    """torchvision's ``retinanet_resnet50_fpn`` as built with backbone weights (frozen BN, 3
    trainable stages), weights not loaded."""
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    backbone = _resnet_fpn_extractor(_frozen_resnet50(), 3, returned_layers=[2, 3, 4],
                                     extra_blocks=LastLevelP6P7(256, 256))
    model = RetinaNet(backbone, 91, min_size=min(height, width), max_size=max(height, width))
    with torch.no_grad():
        # sigmoid(-2.5) = 0.076 > 0.05: candidates fill the per-level top-1000 as trained weights do.
        model.head.classification_head.cls_logits.bias.normal_(-2.5, 0.5)
        model.head.regression_head.bbox_reg.weight.normal_(0, 0.01)
    return model


def tv_ssd(size: int) -> nn.Module:
    from torchvision.models.detection import ssd300_vgg16

    return ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)


def tv_faster_rcnn(height: int, width: int) -> nn.Module:
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.detection.faster_rcnn import FasterRCNN

    backbone = _resnet_fpn_extractor(_frozen_resnet50(), 3)
    return FasterRCNN(backbone, 91, min_size=min(height, width), max_size=max(height, width))


def ours_faster_rcnn() -> nn.Module:
    from anchordet.detectors.faster_rcnn import faster_rcnn_resnet50_c4

    return faster_rcnn_resnet50_c4(90)  # 90 + background logits, as torchvision's 91


def build_pair(name: str, which: str = "both"):
    """-> (ours, tv); a side is None when not asked for (memory probes build one side only)."""
    from anchordet.interop.torchvision import from_torchvision

    batch, height, width = SIZES[name]
    if name == "frcnn":
        return (ours_faster_rcnn() if which != "tv" else None,
                tv_faster_rcnn(height, width) if which != "ours" else None)
    tv = tv_retinanet(height, width) if name == "retinanet" else tv_ssd(height)
    # Every torchvision class kept (91 RetinaNet logits; 90 + background for SSD): same head widths.
    labels = list(range(91)) if name == "retinanet" else list(range(1, 91))
    ours = from_torchvision(tv.eval(), labels=labels).model if which != "tv" else None
    return ours, (tv if which != "ours" else None)


SETUPS = {"fp32": ("fp32", False), "fp32+cl": ("fp32", True), "bf16+cl": ("bf16", True), "fp16+cl": ("fp16", True)}
# torchvision's network modules (its RetinaNet's "backbone" includes the FPN).
TV_PARTS = ("backbone", "head", "rpn.head", "roi_heads.box_head", "roi_heads.box_predictor")


def setup_precision(setup: str, device: str):
    from anchordet.runtime.precision import resolve_precision

    return resolve_precision(SETUPS[setup][0], device)


def prepare(model: nn.Module, setup: str, is_tv: bool, device: str) -> nn.Module:
    """``model`` itself in the memory format and precision of ``setup`` (see the docstring)."""
    from anchordet.runtime.precision import apply_precision

    model.to(memory_format=torch.channels_last if SETUPS[setup][1] else torch.contiguous_format)
    return apply_precision(model, setup_precision(setup, device), TV_PARTS if is_tv else None)


def our_variants(name: str, ours: nn.Module, mode: str = "train", images: torch.Tensor | None = None,
                 jit: bool = False) -> dict[str, nn.Module]:
    """"ours" as built; "ours+fold" (BN folded into the convs) where the backbone is a ResNet;
    for inference with ``jit``, "ours+jit" (traced and optimized network parts, CPU)."""
    import copy

    from anchordet.export.optimize import optimize_for_cpu_inference
    from anchordet.ops.fuse import fold_batch_norms

    variants = {"ours": ours}
    if name in ("retinanet", "frcnn"):
        variants["ours+fold"] = fold_batch_norms(copy.deepcopy(ours))
    if mode == "infer" and jit:
        from anchordet.detectors.base import network_parts

        fast = optimize_for_cpu_inference(ours, images)
        for part, module in network_parts(fast).items():  # hooks cannot go on ScriptModules: wrap them
            if isinstance(module, torch.jit.ScriptModule):
                fast.set_submodule(part, _Hookable(module))
        variants["ours+jit"] = fast
    return variants


class _Hookable(nn.Module):
    """A plain module around a ScriptModule, so that the network-time hooks can attach."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *args):
        return self.inner(*args)


def network_modules(model: nn.Module) -> list[nn.Module]:
    """The top-level network modules whose forward time counts as "inside the network"."""
    from anchordet.detectors.faster_rcnn import FasterRCNN as OurFRCNN
    from torchvision.models.detection import FasterRCNN as TvFRCNN

    if isinstance(model, OurFRCNN):
        return [model.backbone, model.rpn.head, model.roi_head]
    if isinstance(model, TvFRCNN):  # RoI pooling counts as outside for both
        return [model.backbone, model.rpn.head, model.roi_heads.box_head, model.roi_heads.box_predictor]
    return [m for m in (getattr(model, "backbone", None), getattr(model, "fpn", None), model.head) if m is not None]


# ----------------------------------------------------------------------------------------------
# inputs and steps


def make_inputs(name: str, device: str, seed: int = 0):
    """Images (B, 3, H, W) in [0, 1] and per image 6 random boxes with labels 0..79."""
    from anchordet.structures.targets import Targets

    batch, height, width = SIZES[name]
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, height, width, generator=gen)
    targets = []
    for _ in range(batch):
        wh = torch.rand(6, 2, generator=gen) * torch.tensor([width, height]) * 0.5 + 16
        xy = torch.rand(6, 2, generator=gen) * (torch.tensor([width, height]) - wh)
        labels = torch.randint(0, 80, (6,), generator=gen)
        targets.append(Targets(torch.cat([xy, xy + wh], 1), labels, torch.zeros(6, dtype=torch.bool)))
    return images.to(device), [t.to(device) for t in targets]


def tv_targets(targets, name: str):
    """torchvision's SSD and Faster R-CNN keep label 0 for background: our class k is its k + 1
    (``build_pair`` maps classes so); its RetinaNet has no background: k is k."""
    shift = 0 if name == "retinanet" else 1
    return [{"boxes": t.boxes, "labels": t.labels + shift} for t in targets]


@dataclass
class Runner:
    """One model's inference call and training step, with network-time hooks."""

    model: nn.Module
    is_tv: bool
    images: torch.Tensor
    targets: list
    name: str
    network_s: float = 0.0
    _starts: dict = field(default_factory=dict)

    def __post_init__(self):
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        # (none in the frozen, traced inference variant: it is never trained)
        self.optimizer = torch.optim.SGD(trainable, lr=1e-6, momentum=0.9) if trainable else None
        self.tv_targets = tv_targets(self.targets, self.name)
        self._hooks = []
        for module in network_modules(self.model):
            self._hooks += [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def close(self) -> None:
        """Remove the hooks (the same model serves the next mode's runner)."""
        for hook in self._hooks:
            hook.remove()

    def _pre(self, module, args):
        _sync(self.images.device)
        self._starts[id(module)] = time.perf_counter()

    def _post(self, module, args, output):
        _sync(self.images.device)
        self.network_s += time.perf_counter() - self._starts.pop(id(module))

    def _start(self, train: bool) -> float:
        """Set the mode, zero the network time, and return the start time of a timed call."""
        self.model.train(train)
        self.network_s = 0.0
        _sync(self.images.device)
        return time.perf_counter()

    def infer(self) -> dict:
        start = self._start(train=False)
        if self.is_tv:
            with torch.no_grad():
                self.model(list(self.images))
        else:
            self.model.predict(self.images)
        _sync(self.images.device)
        total = time.perf_counter() - start
        return {"total": total, "network": self.network_s, "outside": total - self.network_s}

    def train_step(self) -> dict:
        start = self._start(train=True)
        if self.is_tv:
            losses = self.model(list(self.images), self.tv_targets)
        else:
            losses = self.model.loss(self.images, self.targets)
        loss = sum(losses.values())
        _sync(self.images.device)
        forward_done = time.perf_counter()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        _sync(self.images.device)
        total = time.perf_counter() - start
        outside = forward_done - start - self.network_s
        return {"total": total, "network": total - outside, "outside": outside}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(calls: list[Callable[[], dict]], repeats: int) -> list[list[dict]]:
    """Warm up each once, then A, B, C, A, B, C ... ``repeats`` times."""
    for call in calls:
        call()
    runs: list[list[dict]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, mine in zip(calls, runs):
            mine.append(call())
    return runs


def median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


# ----------------------------------------------------------------------------------------------
# memory (fresh subprocess per model and mode)


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field_name + ":"))


def memory_probe(name: str, side: str, setup: str, mode: str, device: str) -> dict:
    """Peak memory of one call on a model built in this fresh process. CPU: the high-water mark
    of the resident set is reset (``/proc/self/clear_refs`` 5, Linux) after building, so model
    construction does not count; the figure is VmHWM after the call minus VmRSS before it."""
    import ctypes
    import gc

    torch.manual_seed(0)
    ours, tv = build_pair(name, "tv" if side == "tv" else "ours")
    images, targets = make_inputs(name, device)
    model = (tv if side == "tv" else our_variants(name, ours, mode, images, side == "ours+jit")[side]).to(device)
    prepare(model, setup, side == "tv", device)
    runner = Runner(model, side == "tv", images, targets, name)
    del ours, tv
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed build memory back to the OS first
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
    (runner.infer if mode == "infer" else runner.train_step)()
    if device == "cuda":
        return {"peak_mib": (torch.cuda.max_memory_allocated() - base) / 2 ** 20}
    return {"peak_mib": (_status_kib("VmHWM") - before) / 1024, "rss_before_mib": before / 1024}


def sides_of(name: str, mode: str, setup: str, jit: bool) -> list[str]:
    sides = ["ours"] + (["ours+fold"] if name in ("retinanet", "frcnn") else [])
    return sides + (["ours+jit"] if mode == "infer" and jit and setup == "fp32" else []) + ["tv"]


def measure_memory(name: str, mode: str, setup: str, args) -> dict:
    result = {}
    for side in sides_of(name, mode, setup, args.jit):
        cmd = [sys.executable, __file__, "--memory-probe", name, side, setup, mode, "--device", args.device,
               "--threads", str(args.threads), "--size-scale", str(args.size_scale)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        result[side] = json.loads(out.strip().splitlines()[-1])["peak_mib"]
    return result


# ----------------------------------------------------------------------------------------------
# main


def _runners(name: str, ours: nn.Module, tv: nn.Module, mode: str, images, targets, args) -> dict[str, Runner]:
    """"SETUP/SIDE" -> its runner, every set-up of ``args.setups`` for both sides."""
    import copy

    runners = {}
    for setup in args.setups:
        models = our_variants(name, copy.deepcopy(ours), mode, images, args.jit and setup == "fp32")
        models["tv"] = copy.deepcopy(tv)
        for side, model in models.items():
            if side != "ours+jit":  # TorchScript-frozen parts keep their own layout
                prepare(model, setup, side == "tv", args.device)
            runners[f"{setup}/{side}"] = Runner(model, side == "tv", images, targets, name)
    return runners


def _flops(runner: Runner, mode: str) -> int:
    from anchordet.runtime.benchmark import count_flops

    return count_flops(runner.infer if mode == "infer" else runner.train_step)


def bench_model(name: str, args) -> list[dict]:
    from anchordet.runtime.benchmark import matmul_peak_gflops

    torch.manual_seed(0)
    ours, tv = build_pair(name)
    images, targets = make_inputs(name, args.device)
    ours, tv = ours.to(args.device), tv.to(args.device)
    batch = SIZES[name][0]
    baseline = "fp32/tv"  # the reference: torchvision as it runs by default
    rows = []
    for mode, repeats in (("infer", args.repeats), ("train", args.train_repeats)):
        if repeats == 0:
            continue
        runners = _runners(name, ours, tv, mode, images, targets, args)
        if baseline not in runners:
            runners[baseline] = Runner(copy_of(tv), True, images, targets, name)
        fn = "infer" if mode == "infer" else "train_step"
        runs = dict(zip(runners, interleaved([getattr(r, fn) for r in runners.values()], repeats)))
        med = {key: median_of(value) for key, value in runs.items()}
        flops = {"ours": _flops(runners[next(k for k in runners if k.endswith("/ours"))], mode),
                 "tv": _flops(runners[baseline], mode)}
        peaks = {setup: matmul_peak_gflops(setup_precision(setup, args.device), torch.device(args.device))
                 for setup in args.setups}
        for key in runners:
            setup, side = key.split("/")
            if side == "tv" or setup not in args.setups:
                continue
            mem = measure_memory(name, mode, setup, args) if args.memory else {}
            rows.append(_row(name, setup, side, mode, batch, med, runs, flops, peaks[setup], mem, baseline))
            print(json.dumps(rows[-1]), flush=True)
        for runner in runners.values():
            runner.close()
    return rows


def copy_of(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def _network_gflops(flops: int, med: dict) -> float:
    return flops / max(med["total"] - med["outside"], 1e-12) / 1e9


def paired_ratio(slow: list[dict], fast: list[dict]) -> float:
    """Median over rounds of ``slow``'s call time / ``fast``'s in the same round."""
    return statistics.median(a["total"] / b["total"] for a, b in zip(slow, fast))


def _row(name, setup, side, mode, batch, med, runs, flops, peak, mem, baseline) -> dict:
    ours, tv, base = med[f"{setup}/{side}"], med[f"{setup}/tv"], med[baseline]
    row = {"model": name, "setup": setup, "variant": side, "mode": mode, "batch": batch, "size": SIZES[name][1:],
           "ours_img_s": batch / ours["total"], "tv_img_s": batch / tv["total"], "tv_fp32_img_s": batch / base["total"],
           "ours_outside": ours["outside"] / ours["total"], "tv_outside": tv["outside"] / tv["total"],
           "gflop_per_call": {"ours": flops["ours"] / 1e9, "tv": flops["tv"] / 1e9},
           "ours_network_gflops": _network_gflops(flops["ours"], ours), "peak_gflops": peak,
           "tv_network_gflops": _network_gflops(flops["tv"], tv),
           "ours_all_s": [r["total"] for r in runs[f"{setup}/{side}"]], "tv_all_s": [r["total"] for r in runs[f"{setup}/tv"]]}
    row["ratio"] = row["ours_img_s"] / row["tv_img_s"]
    row["ratio_vs_tv_fp32"] = row["ours_img_s"] / row["tv_fp32_img_s"]
    # the same ratios per round (A and B ran minutes apart at most): steadier under changing load
    row["ratio_paired"] = paired_ratio(runs[f"{setup}/tv"], runs[f"{setup}/{side}"])
    row["ratio_vs_tv_fp32_paired"] = paired_ratio(runs[baseline], runs[f"{setup}/{side}"])
    if mem:
        row["ours_peak_mib"], row["tv_peak_mib"] = mem[side], mem["tv"]
    return row


def memory_rows(name: str, args) -> list[dict]:
    rows = []
    for mode in ("infer", "train"):
        for setup in args.setups:
            mem = measure_memory(name, mode, setup, args)
            for key in mem:
                if key != "tv":
                    rows.append({"model": name, "setup": setup, "variant": key, "mode": mode,
                                 "ours_peak_mib": mem[key], "tv_peak_mib": mem["tv"]})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def print_table(rows: list[dict], args) -> None:
    from anchordet.runtime.benchmark import machine_info

    info = machine_info(torch.device(args.device))
    print(f"\ndevice {info.get('gpu', info['device'])}, CPU {info['cpu']} [{' '.join(info['cpu_flags'])}], "
          f"torch threads {info['threads']}, torch {info['torch']}")
    print("| model (batch x size) | set-up | ours | mode | ours img/s | tv img/s (same set-up) | ratio (per round) "
          "| vs tv fp32 (per round) | network GFLOP/s ours / tv (peak) | outside ours / tv | peak MiB ours / tv |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        mem = (f"{r['ours_peak_mib']:.0f} / {r['tv_peak_mib']:.0f}" if "ours_peak_mib" in r else "-")
        if "ours_img_s" not in r:
            print(f"| {r['model']} | {r['setup']} | {r['variant']} | {r['mode']} | | | | | | | {mem} |")
            continue
        print(f"| {r['model']} ({r['batch']}x{r['size'][0]}x{r['size'][1]}) | {r['setup']} | {r['variant']} "
              f"| {r['mode']} | {r['ours_img_s']:.3f} | {r['tv_img_s']:.3f} | {r['ratio']:.2f} ({r['ratio_paired']:.2f}) "
              f"| {r['ratio_vs_tv_fp32']:.2f} ({r['ratio_vs_tv_fp32_paired']:.2f}) | {r['ours_network_gflops']:.0f} / {r['tv_network_gflops']:.0f} "
              f"({r['peak_gflops']:.0f}) | {100 * r['ours_outside']:.1f}% / {100 * r['tv_outside']:.1f}% | {mem} |")


def _scaled(size: int, scale: float) -> int:
    return max(32, int(round(size * scale / 32)) * 32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["retinanet", "ssd", "frcnn"], choices=list(SIZES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="inference calls per model (after a warm-up)")
    parser.add_argument("--train-repeats", type=int, default=3, help="training steps per model (after a warm-up)")
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=["fp32", "fp32+cl", "bf16+cl"],
                        help="memory format and precision, both sides alike (default fp32 fp32+cl bf16+cl)")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory subprocesses")
    parser.add_argument("--no-jit", dest="jit", action="store_false",
                        help="leave out the ours+jit inference variant (fp32 on CPU, on by default)")
    parser.add_argument("--size-scale", type=float, default=1.0,
                        help="scale the issue's image sizes (for a quick check of the script only)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-probe", nargs=4, metavar=("MODEL", "SIDE", "SETUP", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.jit = args.jit and args.device == "cpu"
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.device.startswith("cuda")  # fixed input sizes: tune each conv once
    if args.size_scale != 1.0:
        for key, (batch, height, width) in SIZES.items():
            if key != "ssd":  # SSD300 takes 300x300 only
                SIZES[key] = (batch, _scaled(height, args.size_scale), _scaled(width, args.size_scale))
    if args.memory_probe:
        print(json.dumps(memory_probe(*args.memory_probe, args.device)))
        return 0
    rows = []
    for name in args.models:
        rows += memory_rows(name, args) if args.memory_only else bench_model(name, args)
    print_table(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
