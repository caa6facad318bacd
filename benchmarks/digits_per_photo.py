"""Test AP50 of a digits model per test photo, and class-agnostic (where do the errors come from?).

    python benchmarks/digits_per_photo.py runs/retinanet_digits/model.safetensors [--images 300]

Prints COCO AP50 (class-aware and class-agnostic) on the whole test split and on the scenes of each
unseen test photo. BENCHMARKS.md's per-photo table was made with it.
"""
from __future__ import annotations

import argparse
import copy

from anchordet.cli.common import load_model_for_inference
from anchordet.config.schema import DigitsOptions
from anchordet.data.digits import TEST_PHOTOS
from anchordet.data.spec import build_dataset, digits_spec
from anchordet.data.transforms import build_transforms
from anchordet.engine.evaluate import predict_dataset
from anchordet.evaluation import CocoEvaluator


def ap50(ground_truth: dict, results: list[dict], image_ids: set[int] | None = None, agnostic: bool = False) -> float:
    """COCO AP50 on the images ``image_ids`` (all when None), optionally with every class merged."""
    gt = copy.deepcopy(ground_truth)
    if image_ids is not None:
        gt["images"] = [im for im in gt["images"] if im["id"] in image_ids]
        gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in image_ids]
        results = [r for r in results if r["image_id"] in image_ids]
    if agnostic:
        gt["categories"] = [{"id": 0, "name": "digit"}]
        for annotation in gt["annotations"]:
            annotation["category_id"] = 0
        results = [dict(r, category_id=0) for r in results]
    evaluator = CocoEvaluator(gt)
    evaluator.add_results(results)
    return evaluator.summarize().stats["AP50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--images", type=int, default=300, help="test scenes (default 300, as the presets)")
    args = parser.parse_args()
    model, _, settings, device = load_model_for_inference(args.weights, "cpu")
    dataset = build_dataset(digits_spec(DigitsOptions(num_val=args.images)), "val",
                            transforms=build_transforms(settings, train=False))
    results = predict_dataset(model, dataset, device)
    gt = dataset.coco_ground_truth()
    print(f"all        n={len(dataset):3d}  AP50 {ap50(gt, results):.3f}  agnostic {ap50(gt, results, agnostic=True):.3f}")
    for photo in TEST_PHOTOS:
        ids = {i for i in range(len(dataset)) if dataset.photo_name(i) == photo}
        print(f"{photo:10s} n={len(ids):3d}  AP50 {ap50(gt, results, ids):.3f}  "
              f"agnostic {ap50(gt, results, ids, agnostic=True):.3f}")


if __name__ == "__main__":
    main()
