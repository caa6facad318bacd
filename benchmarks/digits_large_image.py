"""Train from ONE large annotated image, test on large scenes of unseen photos (issue 25, item 7).

    OMP_NUM_THREADS=1 python benchmarks/digits_large_image.py --out /tmp/large [--epochs 40]

The ``retinanet_digits_large`` preset: one 2048 px digits scene (400 digits on the train photos)
cut into random 256 px windows (``data.random_window``, ``data.windows_per_image``). Trained
twice with the same seed and iterations: with the windows only ("before": the preset as it is),
and with scale jitter 0.75..1.25 and colour jitter 0.3 added ("after"); ``--variant`` adds runs
with other augmentations (``vflip``, ``rotate90``). Each model is then applied at full resolution (the
whole 2048 px image through the network: it is fully convolutional) to the training scene and
to ``--test-scenes`` 2048 px scenes made from the unseen test photos and test digits.

Printed per run: COCO AP50 (pycocotools, maxDets raised to 1000: a scene holds 400 digits) and
F1 at IoU 0.4 (DeepForest's convention: greedy matching of a class's detections by decreasing
score to unmatched boxes of that class with IoU >= 0.4; F1 at the best score threshold).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import time

import torch

SCENE = 2048


def f1_at_iou(ground_truth: dict, results: list[dict], iou: float = 0.4) -> tuple[float, float, float, float]:
    """(F1, precision, recall, score threshold) at the best-F1 threshold; class-aware greedy matching."""
    from torchvision.ops import box_iou

    def xyxy(b):
        return [b[0], b[1], b[0] + b[2], b[1] + b[3]]

    total = len(ground_truth["annotations"])
    flags, scores = [], []
    keys = {(a["image_id"], a["category_id"]) for a in ground_truth["annotations"]}
    keys |= {(r["image_id"], r["category_id"]) for r in results}
    for key in keys:
        gts = torch.tensor([xyxy(a["bbox"]) for a in ground_truth["annotations"]
                            if (a["image_id"], a["category_id"]) == key]).reshape(-1, 4)
        dets = sorted((r for r in results if (r["image_id"], r["category_id"]) == key), key=lambda r: -r["score"])
        overlaps = box_iou(torch.tensor([xyxy(r["bbox"]) for r in dets]).reshape(-1, 4), gts)
        taken = torch.zeros(len(gts), dtype=torch.bool)
        for row, det in enumerate(dets):
            candidates = overlaps[row].masked_fill(taken, -1)
            best = int(candidates.argmax()) if len(gts) else -1
            hit = best >= 0 and float(candidates[best]) >= iou
            if hit:
                taken[best] = True
            flags.append(hit)
            scores.append(det["score"])
    if not scores:
        return 0.0, 0.0, 0.0, 1.0
    order = torch.tensor(scores).argsort(descending=True)
    tp = torch.tensor(flags, dtype=torch.float64)[order].cumsum(0)
    count = torch.arange(1, len(order) + 1, dtype=torch.float64)
    precision, recall = tp / count, tp / max(total, 1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    best = int(f1.argmax())
    return float(f1[best]), float(precision[best]), float(recall[best]), float(torch.tensor(scores)[order][best])


def ap50(ground_truth: dict, results: list[dict], max_dets: int = 1000) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(ground_truth))
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.maxDets = [1, 10, max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[1])


def evaluate_scenes(weights, dataset, max_dets: int = 1000) -> dict:
    """AP50 and F1 @ IoU 0.4 of ``weights`` on every scene of ``dataset`` at full resolution."""
    import anchordet

    predictor = anchordet.load(weights, "cpu", min_size=SCENE, max_size=SCENE)
    results = []
    for index in range(len(dataset)):
        image, _ = dataset.scene(index)
        prediction = predictor.predict(image, max_detections=max_dets, batch_size=1)[0]
        detections = prediction.detections
        for box, score, label in zip(detections.boxes.tolist(), detections.scores.tolist(),
                                     detections.labels.tolist()):
            results.append({"image_id": index, "category_id": dataset.category_ids[label],
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})
    gt = dataset.coco_ground_truth()
    f1, precision, recall, threshold = f1_at_iou(gt, results, 0.4)
    return {"AP50": ap50(gt, results, max_dets), "F1@0.4": f1, "P": precision, "R": recall, "thresh": threshold,
            "objects": len(gt["annotations"])}


VARIANTS = {
    "before": {},  # the preset: windows only
    "after": dict(scale_jitter=(0.75, 1.25), color_jitter=0.3),
    "vflip": dict(vflip=True),
    "rotate90": dict(rotate90=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the runs")
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--test-scenes", type=int, default=3)
    parser.add_argument("--variant", nargs="+", default=["before", "after"], choices=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from anchordet.config.presets import PRESETS
    from anchordet.data.digits import DigitsDataset
    from anchordet.engine.trainer import train

    preset = PRESETS["retinanet_digits_large"]
    epochs = args.epochs or preset.solver.epochs
    train_scene = DigitsDataset("train", preset.data.digits)
    test_scenes = DigitsDataset("val", dataclasses.replace(preset.data.digits, num_val=args.test_scenes))
    for variant in args.variant:
        config = dataclasses.replace(
            preset, data=dataclasses.replace(preset.data, **VARIANTS[variant]),
            solver=dataclasses.replace(preset.solver, epochs=epochs),
            run=dataclasses.replace(preset.run, out_dir=f"{args.out}/{variant}", threads=1, log_every=50))
        start = time.perf_counter()
        train(config, progress=False, overwrite=True)
        minutes = (time.perf_counter() - start) / 60
        weights = f"{args.out}/{variant}/model.safetensors"
        row = {"variant": variant, "epochs": epochs, "windows": epochs * len(train_scene) * config.data.windows_per_image,
               "train_minutes": round(minutes, 1), "train": evaluate_scenes(weights, train_scene),
               "test": evaluate_scenes(weights, test_scenes)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
