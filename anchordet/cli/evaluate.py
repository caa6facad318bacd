"""``anchordet evaluate``: a trained model on a dataset split -> metrics, PR curves, COCO results."""
from __future__ import annotations

import argparse
from pathlib import Path

from anchordet.cli.common import (
    add_device_argument, eval_transform_from_settings, load_model_for_inference, positive_int,
)
from anchordet.cli.main import UserError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a trained model on a dataset (COCO / VOC metrics)",
        description="Run a model over a dataset split and score it. Writes OUT/metrics.json, "
                    "OUT/results.json (COCO results format, original image pixels) and with --plots the "
                    "precision-recall curves OUT/pr_*.png.",
        epilog="example: anchordet evaluate --weights runs/retinanet_digits/model.safetensors --data digits")
    parser.add_argument("--weights", "-w", required=True, help="model.safetensors / best.safetensors or a .pt checkpoint")
    parser.add_argument("--data", help="dataset YAML or 'digits' (default: the dataset of the checkpoint's config, "
                                       "or digits)")
    parser.add_argument("--split", default="val", choices=("train", "val"), help="dataset split (default val)")
    parser.add_argument("--metric", default="coco", choices=("coco", "voc07", "voc"),
                        help="coco: AP@[.5:.95] and the 12 COCO numbers; voc07: 11-point AP@0.5; voc: area AP@0.5")
    parser.add_argument("--out", default=None, help="output folder (default: next to the weights, eval_<split>/)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--plots", action="store_true", help="write precision-recall curve PNGs")
    parser.add_argument("--digits-val-images", type=positive_int, default=None,
                        help="for --data digits: number of test scenes (default: as trained, or 300)")
    add_device_argument(parser)
    return parser


def run(args) -> int:
    from anchordet.engine.evaluate import evaluate_dataset
    from anchordet.files import atomic_write_json

    model, model_config, settings, device = load_model_for_inference(args.weights, args.device)
    dataset = _dataset(args, settings)
    if dataset.num_classes != model_config.num_classes:
        raise UserError(f"the dataset has {dataset.num_classes} classes but the model in {args.weights} "
                        f"predicts {model_config.num_classes}")
    result = evaluate_dataset(model, dataset, args.metric, device, batch_size=args.batch_size)
    out = Path(args.out) if args.out else Path(args.weights).parent / f"eval_{args.split}"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", result.metrics.to_dict(), indent=1)
    atomic_write_json(out / "results.json", result.results)
    print(result.metrics.table())
    if args.plots:
        from anchordet.evaluation.plots import plot_pr_curves

        plot_pr_curves(result.metrics, out)
    print(f"wrote {out / 'metrics.json'} and {out / 'results.json'}" + (" and PR curves" if args.plots else ""))
    return 0


def _dataset(args, settings: dict):
    from anchordet.config.schema import DataConfig
    from anchordet.data.spec import build_dataset
    from anchordet.engine.data import dataset_spec

    data_name = args.data or settings.get("dataset") or "digits"
    fields = {"dataset": data_name}
    if data_name == "digits":
        fields["digits_val_images"] = args.digits_val_images or settings.get("digits_val_images", 300)
        for key in ("digits_canvas_size", "digits_per_image_max", "digits_seed"):
            if key in settings:
                fields[key] = settings[key]
    spec = dataset_spec(DataConfig(**fields))
    return build_dataset(spec, split=args.split, transforms=eval_transform_from_settings(settings))
