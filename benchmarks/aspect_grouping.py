"""Aspect-ratio grouped batches on a COCO-shaped synthetic set: padded pixels and training speed.

1. Padding (deterministic, no images): COCO train2017's count of images (118,287) with shapes
   drawn from COCO's common ones (``anchor_analysis_speed.COCO_SHAPES``: 640 x 480, 480 x 640,
   640 x 427, 612 x 612, ...), resized as ``retinanet_r50_coco`` trains (a shorter side from
   640..800 drawn per batch, longer side <= 1333), batched by the trainer's own sampler
   (``EpochSampler``, one epoch, seed 0) without groups and with 2 and 4 aspect-ratio groups.
   For each per-process batch size the share of padded pixels (``ImageBatch`` pads to the
   largest height and width, rounded up to 32), as the mean over batches and over all pixels.
2. Speed (``--speed``; wall time, so run it on an idle machine): the tiny digits RetinaNet
   (``retinanet_digits_fast``'s network, 2 classes) trained on 192 noise PNGs of the same shapes
   at a quarter of the size (shorter side 160..200, longer <= 333), one process, ``--threads``
   threads, batch 8: images/s with and without grouping, runs interleaved A, B, A, B after a
   warm-up run of each, the median of ``--repeats``.

Usage:
    python benchmarks/aspect_grouping.py                     # padding only (seconds)
    OMP_NUM_THREADS=1 python benchmarks/aspect_grouping.py --speed --repeats 3 --iters 30
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anchor_analysis_speed import COCO_SHAPES  # noqa: E402

from anchordet.config.presets import COCO_MULTI_SCALE  # noqa: E402
from anchordet.data.transforms import keep_ratio_size  # noqa: E402
from anchordet.engine.data import EpochSampler  # noqa: E402
from anchordet.engine.samplers import aspect_ratio_groups, batch_min_size, padded_share  # noqa: E402

COCO_TRAIN_IMAGES = 118_287


def coco_shapes(count: int, seed: int = 0) -> list[tuple[int, int]]:
    """(height, width) of ``count`` images drawn uniformly from COCO_SHAPES."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(COCO_SHAPES), (count,), generator=g).tolist()
    return [COCO_SHAPES[p] for p in picks]


def padding(shapes, local_batch: int, num_groups: int, sizes=COCO_MULTI_SCALE, max_size: int = 1333,
            seed: int = 0) -> tuple[float, float]:
    """(mean padded share per batch, padded share of all pixels) over one epoch of local batches."""
    groups = aspect_ratio_groups([w / h for h, w in shapes], num_groups) if num_groups > 1 else None
    sampler = EpochSampler(len(shapes), local_batch, seed=seed, epoch=0, shuffle=True, groups=groups,
                           batch_numbers=True)
    batches: dict[int, list[int]] = {}
    for index, number in sampler:
        batches.setdefault(number, []).append(index)
    shares, padded, total = [], 0.0, 0.0
    for number, items in batches.items():
        side = batch_min_size(sizes, seed, 0, number)
        resized = [keep_ratio_size(*shapes[i], side, max_size) for i in items]
        share = padded_share(resized)
        pixels = sum(h * w for h, w in resized) / (1 - share)
        shares.append(share)
        padded += share * pixels
        total += pixels
    return statistics.fmean(shares), padded / total


def padding_table(local_batches=(2, 4, 8, 16), group_counts=(1, 2, 4)) -> None:
    shapes = coco_shapes(COCO_TRAIN_IMAGES)
    print(f"padded pixels, {len(shapes)} COCO-shaped images, shorter side {COCO_MULTI_SCALE[0]}..{COCO_MULTI_SCALE[-1]} "
          "per batch, longer <= 1333, padded to multiples of 32")
    print("| images per process batch | " + " | ".join(
        f"{'no grouping' if g == 1 else f'{g} groups'}: mean per batch / of all pixels" for g in group_counts) + " |")
    print("| --- |" + " --- |" * len(group_counts))
    for batch in local_batches:
        cells = [padding(shapes, batch, g) for g in group_counts]
        print(f"| {batch} | " + " | ".join(f"{100 * m:.1f}% / {100 * a:.1f}%" for m, a in cells) + " |")


def write_speed_dataset(folder: Path, count: int = 192) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.helpers import write_coco_dataset

    shapes = [(h // 4, w // 4) for h, w in coco_shapes(count, seed=1)]
    return write_coco_dataset(folder, shapes)


def time_training(data_yaml: Path, groups: int, iters: int, threads: int, out: Path) -> float:
    """Images per second of ``iters`` training iterations (after the trainer is built)."""
    from anchordet.config.load import load_config
    from anchordet.engine.trainer import Trainer

    overrides = [f"data.dataset={data_yaml}", "model.num_classes=2", "data.min_size=[160, 168, 176, 184, 192, 200]",
                 "data.max_size=333", f"data.aspect_ratio_groups={groups}", "data.hflip=true", "data.num_workers=0",
                 "solver.batch_size=8", "solver.epochs=100", "run.eval_every=0", f"run.stop_after_iters={iters}",
                 f"run.threads={threads}", f"run.out_dir={out}", "run.device=cpu"]
    trainer = Trainer(load_config("retinanet_digits_fast", overrides), progress=False)
    start = time.perf_counter()
    trainer.fit()
    return iters * 8 / (time.perf_counter() - start)


def speed_table(repeats: int, iters: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_yaml = write_speed_dataset(Path(tmp) / "data")
        results = {1: [], 2: []}
        for groups in (1, 2):  # warm-up
            time_training(data_yaml, groups, max(5, iters // 3), threads, Path(tmp) / f"warm{groups}")
        for r in range(repeats):
            for groups in (1, 2):
                results[groups].append(time_training(data_yaml, groups, iters, threads, Path(tmp) / f"run{r}_{groups}"))
                print(f"repeat {r}, {'no grouping' if groups == 1 else '2 groups'}: {results[groups][-1]:.1f} img/s",
                      flush=True)
        plain, grouped = statistics.median(results[1]), statistics.median(results[2])
        print(f"training images/s (median of {repeats}, {iters} iterations of batch 8, {threads} thread(s)): "
              f"no grouping {plain:.1f}, 2 groups {grouped:.1f}, ratio {grouped / plain:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", action="store_true", help="also time training (wall clock: idle machine)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    padding_table()
    if args.speed:
        speed_table(args.repeats, args.iters, args.threads)


if __name__ == "__main__":
    main()
