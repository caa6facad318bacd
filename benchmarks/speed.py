"""Speed of anchordet's detectors side by side with torchvision's, in one run.

    OMP_NUM_THREADS=1 python benchmarks/speed.py [--models retinanet ssd frcnn] [--threads 1]
        [--repeats 5] [--train-repeats 3] [--no-memory | --memory-only] [--device cpu|cuda] [--amp]

Pairs (issue 9): RetinaNet-R50-FPN 2x3x640x832 (torchvision's weights converted with
``from_torchvision``: identical weights), SSD300-VGG16 8x3x300x300 (identical weights),
Faster R-CNN: ours R50-C4 against torchvision's R50-FPN 1x3x800x800 (the nearest model a user
would pick; different networks, different weights). For the ResNet models "ours+fold" is ours
after ``anchordet.ops.fuse.fold_batch_norms`` (frozen BN folded into the convs; opt-in); for
inference on CPU "ours+jit" is ``anchordet.export.optimize.optimize_for_cpu_inference`` (opt-in).

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
Peak memory: each (model, mode) in a fresh subprocess, the first call after building: the
resident set's high-water mark during the call minus the resident size before it (CPU; the mark
is reset through /proc/self/clear_refs), or torch.cuda.max_memory_allocated (GPU).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
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
        from anchordet.export.optimize import NETWORK_PARTS, _get_path

        fast = optimize_for_cpu_inference(ours, images)
        for part in NETWORK_PARTS:  # hooks cannot go on ScriptModules: wrap them
            if isinstance(_get_path(fast, part), torch.jit.ScriptModule):
                fast.set_submodule(part, _Hookable(_get_path(fast, part)))
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
    amp: bool = False
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

    def _autocast(self):
        if self.amp and self.images.is_cuda:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _start(self, train: bool) -> float:
        """Set the mode, zero the network time, and return the start time of a timed call."""
        self.model.train(train)
        self.network_s = 0.0
        _sync(self.images.device)
        return time.perf_counter()

    def infer(self) -> dict:
        start = self._start(train=False)
        with self._autocast():
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
        with self._autocast():
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


def memory_probe(name: str, side: str, mode: str, device: str) -> dict:
    """Peak memory of one call on a model built in this fresh process. CPU: the high-water mark
    of the resident set is reset (``/proc/self/clear_refs`` 5, Linux) after building, so model
    construction does not count; the figure is VmHWM after the call minus VmRSS before it."""
    import ctypes
    import gc

    torch.manual_seed(0)
    ours, tv = build_pair(name, "tv" if side == "tv" else "ours")
    images, targets = make_inputs(name, device)
    model = (tv if side == "tv" else our_variants(name, ours, mode, images, side == "ours+jit")[side]).to(device)
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


def measure_memory(name: str, mode: str, args) -> dict:
    result = {}
    sides = ["ours"] + (["ours+fold"] if name in ("retinanet", "frcnn") else [])
    sides += (["ours+jit"] if mode == "infer" and args.jit else []) + ["tv"]
    for side in sides:
        cmd = [sys.executable, __file__, "--memory-probe", name, side, mode, "--device", args.device,
               "--threads", str(args.threads), "--size-scale", str(args.size_scale)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        result[side] = json.loads(out.strip().splitlines()[-1])["peak_mib"]
    return result


# ----------------------------------------------------------------------------------------------
# main


def bench_model(name: str, args) -> list[dict]:
    torch.manual_seed(0)
    ours, tv = build_pair(name)
    images, targets = make_inputs(name, args.device)
    ours, tv = ours.to(args.device), tv.to(args.device)
    batch = SIZES[name][0]
    rows = []
    for mode, repeats in (("infer", args.repeats), ("train", args.train_repeats)):
        if repeats == 0:
            continue
        runners = {key: Runner(model, False, images, targets, name, args.amp)
                   for key, model in our_variants(name, ours, mode, images, args.jit).items()}
        runners["tv"] = Runner(tv, True, images, targets, name, args.amp)
        fn = "infer" if mode == "infer" else "train_step"
        runs = dict(zip(runners, interleaved([getattr(r, fn) for r in runners.values()], repeats)))
        med = {key: median_of(value) for key, value in runs.items()}
        mem = measure_memory(name, mode, args) if args.memory else {}
        for key in runners:
            if key == "tv":
                continue
            row = {"model": name, "variant": key, "mode": mode, "batch": batch, "size": SIZES[name][1:],
                   "ours_img_s": batch / med[key]["total"], "tv_img_s": batch / med["tv"]["total"],
                   "ours_outside": med[key]["outside"] / med[key]["total"],
                   "tv_outside": med["tv"]["outside"] / med["tv"]["total"],
                   "ours_outside_s": med[key]["outside"], "tv_outside_s": med["tv"]["outside"],
                   "ours_all_s": [r["total"] for r in runs[key]], "tv_all_s": [r["total"] for r in runs["tv"]]}
            row["ratio"] = row["ours_img_s"] / row["tv_img_s"]
            if mem:
                row["ours_peak_mib"], row["tv_peak_mib"] = mem[key], mem["tv"]
            rows.append(row)
            print(json.dumps(row), flush=True)
        for runner in runners.values():
            runner.close()
    return rows


def memory_rows(name: str, args) -> list[dict]:
    rows = []
    for mode in ("infer", "train"):
        mem = measure_memory(name, mode, args)
        for key in mem:
            if key != "tv":
                rows.append({"model": name, "variant": key, "mode": mode, "ours_peak_mib": mem[key],
                             "tv_peak_mib": mem["tv"]})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def print_table(rows: list[dict], args) -> None:
    print(f"\ndevice {args.device}{' (AMP fp16)' if args.amp else ''}, torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("| model (batch x size) | ours | mode | ours img/s | torchvision img/s | ratio | outside ours / tv "
          "| peak MiB ours / tv |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        mem = (f"{r['ours_peak_mib']:.0f} / {r['tv_peak_mib']:.0f}" if "ours_peak_mib" in r else "-")
        if "ours_img_s" not in r:
            print(f"| {r['model']} | {r['variant']} | {r['mode']} | | | | | {mem} |")
            continue
        print(f"| {r['model']} ({r['batch']}x{r['size'][0]}x{r['size'][1]}) | {r['variant']} | {r['mode']} "
              f"| {r['ours_img_s']:.3f} | {r['tv_img_s']:.3f} | {r['ratio']:.2f} | {100 * r['ours_outside']:.1f}% / "
              f"{100 * r['tv_outside']:.1f}% | {mem} |")


def _scaled(size: int, scale: float) -> int:
    return max(32, int(round(size * scale / 32)) * 32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["retinanet", "ssd", "frcnn"], choices=list(SIZES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="inference calls per model (after a warm-up)")
    parser.add_argument("--train-repeats", type=int, default=3, help="training steps per model (after a warm-up)")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory subprocesses")
    parser.add_argument("--no-jit", dest="jit", action="store_false",
                        help="leave out the ours+jit inference variant (on by default on CPU)")
    parser.add_argument("--size-scale", type=float, default=1.0,
                        help="scale the issue's image sizes (for a quick check of the script only)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast (CUDA only)")
    parser.add_argument("--memory-probe", nargs=3, metavar=("MODEL", "SIDE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.jit = args.jit and args.device == "cpu"
    torch.set_num_threads(args.threads)
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
