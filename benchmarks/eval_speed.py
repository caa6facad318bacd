"""COCO evaluation speed: anchordet vs pycocotools on one large synthetic case, in one run.

    python benchmarks/eval_speed.py [--images 5000] [--categories 80] [--dets 100] [--seed 0]

Ground truth: 1-14 objects per image of all sizes, 1% crowd regions; detections: 100 per
image, jittered copies of the gts (mostly the right category) plus random boxes, scores
rounded to 3 decimals (so ties occur). Times "load" (pycocotools: COCO index + loadRes;
anchordet: CocoEvaluator + add_results) and "evaluate" (pycocotools: evaluate + accumulate
+ summarize; anchordet: summarize), checks the 12 statistics agree to 1e-9 and prints ratios.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import time

import numpy as np


def synthetic_case(num_images: int, num_cats: int, dets_per_image: int, seed: int):
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "width": 640, "height": 480} for i in range(num_images)]
    cats = [{"id": c + 1, "name": f"class{c + 1}"} for c in range(num_cats)]
    anns, results = [], []
    for im in images:
        n_gt = int(rng.integers(1, 15))
        sizes = np.exp(rng.uniform(np.log(8), np.log(300), (n_gt, 2)))
        xy = rng.uniform(0, 1, (n_gt, 2)) * (np.array([640, 480]) - sizes).clip(1)
        gt_cats = rng.integers(1, num_cats + 1, n_gt)
        for b, c in zip(np.concatenate([xy, sizes], 1), gt_cats):
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": int(c),
                         "bbox": b.tolist(), "area": float(b[2] * b[3]), "iscrowd": int(rng.random() < 0.01)})
        near = min(dets_per_image, 3 * n_gt)
        src = rng.integers(0, n_gt, near)
        base = np.concatenate([xy, sizes], 1)[src]
        jit = base + rng.normal(0, 0.1, (near, 4)) * base[:, [2, 3, 2, 3]]
        cats_near = np.where(rng.random(near) < 0.9, gt_cats[src], rng.integers(1, num_cats + 1, near))
        far = dets_per_image - near
        rand_wh = np.exp(rng.uniform(np.log(8), np.log(300), (far, 2)))
        rand = np.concatenate([rng.uniform(0, 1, (far, 2)) * (np.array([640, 480]) - rand_wh).clip(1), rand_wh], 1)
        boxes = np.concatenate([jit, rand])
        boxes[:, 2:] = np.abs(boxes[:, 2:])
        cats_all = np.concatenate([cats_near, rng.integers(1, num_cats + 1, far)])
        scores = np.round(np.concatenate([rng.uniform(0.3, 1, near), rng.uniform(0, 0.7, far)]), 3)
        results += [{"image_id": im["id"], "category_id": int(c), "bbox": b, "score": s}
                    for b, c, s in zip(boxes.tolist(), cats_all.tolist(), scores.tolist())]
    return {"images": images, "annotations": anns, "categories": cats}, results


def run_pycocotools(gt, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        t1 = time.perf_counter()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return np.array(ev.stats), t1 - t0, t2 - t1


def run_anchordet(gt, results):
    from anchordet.evaluation import CocoEvaluator
    from anchordet.evaluation.coco import STAT_KEYS

    t0 = time.perf_counter()
    ev = CocoEvaluator(gt)
    ev.add_results(results)
    t1 = time.perf_counter()
    m = ev.summarize()
    t2 = time.perf_counter()
    return np.array([m.stats[k] for k in STAT_KEYS]), t1 - t0, t2 - t1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--categories", type=int, default=80)
    parser.add_argument("--dets", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gt, results = synthetic_case(args.images, args.categories, args.dets, args.seed)
    print(f"{args.images} images, {args.categories} categories, {len(gt['annotations'])} gt boxes, "
          f"{len(results)} detections")
    ours, ours_load, ours_eval = run_anchordet(gt, results)
    # pycocotools' loadRes adds keys to the result dicts: give it its own copy (not timed)
    theirs, ref_load, ref_eval = run_pycocotools(copy.deepcopy(gt), copy.deepcopy(results))
    diff = float(np.max(np.abs(ours - theirs)))
    print(f"{'':12s}{'load s':>10s}{'evaluate s':>12s}{'total s':>10s}")
    print(f"{'pycocotools':12s}{ref_load:10.2f}{ref_eval:12.2f}{ref_load + ref_eval:10.2f}")
    print(f"{'anchordet':12s}{ours_load:10.2f}{ours_eval:12.2f}{ours_load + ours_eval:10.2f}")
    print(f"speed-up: evaluate {ref_eval / ours_eval:.1f}x, load {ref_load / ours_load:.1f}x, "
          f"total {(ref_load + ref_eval) / (ours_load + ours_eval):.1f}x")
    print("stats (AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs ARm ARl):", np.round(ours, 4).tolist())
    print(f"max |anchordet - pycocotools| over the 12 stats: {diff:.1e}")
    if diff > 1e-9:
        print("MISMATCH")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
