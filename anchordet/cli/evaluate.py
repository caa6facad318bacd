"""``anchordet evaluate``: a trained model on a dataset split -> metrics, PR curves, COCO results."""
from __future__ import annotations

import argparse
from pathlib import Path

from anchordet.cli.common import add_device_argument, add_precision_argument, positive_int
from anchordet.cli.main import UserError
from anchordet.cli.score import add_analysis_arguments, check_analysis_arguments


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
    add_precision_argument(parser)
    add_analysis_arguments(parser)  # --analyze: the error analysis of `anchordet score`, into OUT/analysis/
    return parser


def run(args) -> int:
    from anchordet.engine.evaluate import evaluate_dataset
    from anchordet.files import atomic_write_json
    from anchordet.predictor import load

    check_analysis_arguments(args)
    predictor = load(args.weights, args.device, precision=args.precision)  # the object `predict` and Python users get
    dataset = _dataset(args, predictor.settings, predictor.transform)
    if dataset.num_classes != predictor.num_classes:
        raise UserError(f"the dataset has {dataset.num_classes} classes but the model in {args.weights} "
                        f"predicts {predictor.num_classes}")
    result = evaluate_dataset(predictor.backend, dataset, args.metric, predictor.device, batch_size=args.batch_size,
                              progress=True)
    out = Path(args.out) if args.out else Path(args.weights).parent / f"eval_{args.split}"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", result.metrics.to_dict(), indent=1)
    atomic_write_json(out / "results.json", result.results)
    print(result.metrics.table())
    if args.plots:
        from anchordet.evaluation.plots import plot_pr_curves

        plot_pr_curves(result.metrics, out)
    print(f"wrote {out / 'metrics.json'} and {out / 'results.json'}" + (" and PR curves" if args.plots else ""))
    if args.analyze:
        _analyze(dataset.coco_ground_truth(), result.results, out / "analysis", args.confusion_thresh)
    return 0


def _analyze(gt: dict, results: list[dict], out: Path, confusion_thresh: float | None) -> None:
    """The error analysis of the results just scored (TIDE, F1 against threshold, confusion)."""
    from anchordet.cli.score import print_analysis
    from anchordet.evaluation.analysis_plots import analyze_files

    analysis, paths = analyze_files(gt, results, out, confusion_thresh)
    print_analysis(analysis, paths, out)


def _dataset(args, settings, transform):
    """The split to score: ``--data``, else the dataset the model was trained on (for digits the
    same test scenes), else digits; ``transform``: the predictor's eval resize."""
    import dataclasses

    from anchordet.config.schema import DataConfig, DigitsOptions
    from anchordet.data.spec import build_dataset
    from anchordet.engine.data import dataset_spec

    data_name = args.data or settings.dataset or "digits"
    digits = settings.digits or DigitsOptions(num_val=300)
    if args.digits_val_images:
        digits = dataclasses.replace(digits, num_val=args.digits_val_images)
    spec = dataset_spec(DataConfig(dataset=data_name, digits=digits))
    return build_dataset(spec, split=args.split, transforms=transform)
