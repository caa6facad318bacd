"""Speed of ``anchordet anchors`` on a COCO-sized annotation set (synthetic, generated here).

COCO train2017 has 118,287 images and 860,001 boxes (7.27 per image), 41% small, 34% medium and
24% large (Lin et al. 2014, and the COCO detection-eval page). This script draws a set with those
counts: image sizes from COCO's common shapes (640 x 480, 480 x 640, 640 x 427, ...), box areas
log-uniform over the three COCO size ranges in those proportions, aspect ratios log-normal.
It resizes them as RetinaNet R50-FPN's preset does (shorter side 800, longer <= 1333), then:

- the analysis (sparse candidate search + the training matcher) over every image;
- the peer: the plain path, IoU of every gt with every anchor and the same matcher
  (``match_statistics``, what a dense ``box_iou`` matcher such as torchvision's does), on the
  first ``--dense-images`` images, extrapolated; both give the same numbers (checked here).

Usage: python benchmarks/anchor_analysis_speed.py [--images 118287] [--dense-images 200] [--threads 1]
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from anchordet.analysis.anchors.coverage import AnnotatedImage, analyze_coverage, match_statistics
from anchordet.analysis.anchors.model_anchors import detector_anchors
from anchordet.config.load import load_config
from anchordet.data.transforms import keep_ratio_size

COCO_SHAPES = ((480, 640), (640, 480), (427, 640), (640, 427), (425, 640), (426, 640), (428, 640), (612, 612),
               (500, 375), (375, 500), (333, 500), (500, 333))  # (h, w)
SIZE_SHARES = ((0.41, 4.0, 32.0), (0.34, 32.0, 96.0), (0.25, 96.0, 500.0))  # share, sqrt(area) range


def synthetic_coco(num_images: int, boxes_per_image: float, min_size: int, max_size: int,
                   seed: int = 0) -> list[AnnotatedImage]:
    g = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.full((num_images,), boxes_per_image), generator=g).long()
    total = int(counts.sum())
    group = torch.multinomial(torch.tensor([s[0] for s in SIZE_SHARES]), total, True, generator=g)
    low = torch.tensor([s[1] for s in SIZE_SHARES]).log()[group]
    high = torch.tensor([s[2] for s in SIZE_SHARES]).log()[group]
    side = torch.exp(low + (high - low) * torch.rand(total, generator=g))  # sqrt(area) in original pixels
    ratio = torch.exp(torch.randn(total, generator=g) * 0.6)  # height / width
    wh = torch.stack((side / ratio.sqrt(), side * ratio.sqrt()), 1)
    shapes = torch.tensor(COCO_SHAPES)[torch.randint(len(COCO_SHAPES), (num_images,), generator=g)]
    images, start = [], 0
    for i in range(num_images):
        n, (h, w) = int(counts[i]), shapes[i].tolist()
        box_wh = torch.minimum(wh[start:start + n], torch.tensor([w - 1.0, h - 1.0]))
        xy = torch.rand(n, 2, generator=g) * (torch.tensor([w, h]) - box_wh)
        boxes = torch.cat((xy, xy + box_wh), 1)
        new_h, new_w = keep_ratio_size(h, w, min_size, max_size)
        scale = torch.tensor([new_w / w, new_h / h, new_w / w, new_h / h])
        images.append(AnnotatedImage(i, (new_h, new_w), boxes * scale, torch.zeros(n, dtype=torch.int64)))
        start += n
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=118_287)
    parser.add_argument("--boxes-per-image", type=float, default=860_001 / 118_287)
    parser.add_argument("--dense-images", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config("retinanet_r50_coco")
    images = synthetic_coco(args.images, args.boxes_per_image, config.data.eval_min_size, config.data.max_size)
    anchors = detector_anchors(config.model.build(), config.model.factory, images[0].input_size)
    num_boxes = sum(len(i.labels) for i in images)
    sizes = {i.input_size for i in images}

    # CPU time of this process next to wall time: on a shared machine the wall time includes
    # waiting for the CPU; with one thread the CPU time is what a free core would take.
    start, cpu_start = time.perf_counter(), time.process_time()
    report = analyze_coverage(images, anchors.at)
    fast_s, fast_cpu = time.perf_counter() - start, time.process_time() - cpu_start

    subset = images[:args.dense_images]
    cache = {size: anchors.at(size).boxes for size in {i.input_size for i in subset}}
    start = time.process_time()
    dense = [match_statistics(cache[i.input_size], i.boxes, anchors.matcher) for i in subset]
    dense_cpu = (time.process_time() - start) * len(images) / len(subset)
    subset_boxes = sum(len(i.labels) for i in subset)
    same = torch.equal(torch.cat([d.num_positive for d in dense]), report.num_positive[:subset_boxes]) and \
        torch.equal(torch.cat([d.best_iou for d in dense]), report.best_iou[:subset_boxes])

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"{len(images)} images, {num_boxes} boxes, {len(sizes)} distinct input sizes, RetinaNet R50-FPN anchors "
          f"(about {len(anchors.at((800, 1067)).boxes)} per 800x1067 image)")
    print(f"analysis (sparse search + matcher): {fast_cpu:.1f} s CPU ({fast_cpu / len(images) * 1e3:.2f} ms per image), "
          f"{fast_s:.1f} s wall")
    print(f"plain all-anchors IoU + matcher:    {dense_cpu:.0f} s CPU extrapolated from {len(subset)} images "
          f"-> {dense_cpu / fast_cpu:.0f}x the analysis; same numbers on those images: {same}")
    print(f"coverage: {report.summary()}")


if __name__ == "__main__":
    main()
