"""``anchordet evaluate``: a trained model on a dataset split -> metrics, PR curves, COCO results."""
from __future__ import annotations

import argparse
from pathlib import Path

from anchordet.cli.common import (add_device_argument, add_precision_argument, add_tile_arguments, positive_int,
                                  tile_arguments)
from anchordet.cli.main import UserError
from anchordet.cli.score import add_analysis_arguments, add_counting_arguments, check_analysis_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a trained model on a dataset (COCO / VOC metrics)",
        description="Run a model over a dataset split and score it. Writes OUT/metrics.json, "
                    "OUT/results.json (COCO results format, original image pixels), OUT/prf.json (precision, "
                    "recall and F1 at --iou, overall and per image) and with --plots the "
                    "precision-recall curves OUT/pr_*.png. --tile SIZE predicts each image on SIZE x SIZE windows "
                    "at its own resolution (large images with small objects; TIFFs read window by window).",
        epilog="example: anchordet evaluate --weights runs/retinanet_digits/model.safetensors --data digits")
    parser.add_argument("--weights", "-w", required=True, help="model.safetensors / best.safetensors or a .pt checkpoint")
    parser.add_argument("--data", help="dataset YAML or 'digits' (default: the dataset of the checkpoint's config, "
                                       "or digits)")
    parser.add_argument("--split", default="val", choices=("train", "val"), help="dataset split (default val)")
    parser.add_argument("--metric", default="coco", choices=("coco", "voc07", "voc"),
                        help="coco: AP@[.5:.95] and the 12 COCO numbers; voc07: 11-point AP@0.5; voc: area AP@0.5")
    parser.add_argument("--out", default=None, help="output folder (default: next to the weights, eval_<split>/)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images (tiles with --tile) per forward pass")
    parser.add_argument("--plots", action="store_true", help="write precision-recall curve PNGs")
    parser.add_argument("--digits-val-images", type=positive_int, default=None,
                        help="for --data digits: number of test scenes (default: as trained, or 300)")
    add_device_argument(parser)
    add_precision_argument(parser)
    add_counting_arguments(parser)
    add_tile_arguments(parser)
    add_analysis_arguments(parser)  # --analyze: the error analysis of `anchordet score`, into OUT/analysis/
    return parser


def run(args) -> int:
    from anchordet.engine.evaluate import evaluate_dataset
    from anchordet.files import atomic_write_json
    from anchordet.predictor import load

    check_analysis_arguments(args)
    tiling = tile_arguments(args)
    predictor = load(args.weights, args.device, precision=args.precision)  # the object `predict` and Python users get
    # the library's post-processing (a torch model, an exported file of raw outputs) keeps at least
    # --max-dets; an exported graph with NMS inside keeps its own cap
    holders = [predictor.backend] if predictor.backend.adjustable else []
    holders += [predictor.model] if predictor.model is not None else []
    for holder in holders:
        keep_at_least(holder, args.max_dets)
    dataset = _dataset(args, predictor.settings, None if tiling else predictor.transform)
    if dataset.num_classes != predictor.num_classes:
        raise UserError(f"the dataset has {dataset.num_classes} classes but the model in {args.weights} "
                        f"predicts {predictor.num_classes}")
    if tiling is None:
        result = evaluate_dataset(predictor.backend, dataset, args.metric, predictor.device, batch_size=args.batch_size,
                                  progress=True, max_dets=args.max_dets)
    else:
        result = score_results(tiled_results(predictor, dataset, tiling), dataset, args.metric, args.max_dets)
    out = Path(args.out) if args.out else Path(args.weights).parent / f"eval_{args.split}"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", result.metrics.to_dict(), indent=1)
    atomic_write_json(out / "results.json", result.results)
    print(result.metrics.table())
    _report_counting(dataset.coco_ground_truth(), result.results, args, out / "prf.json")
    if args.plots:
        from anchordet.evaluation.plots import plot_pr_curves

        plot_pr_curves(result.metrics, out)
    print(f"wrote {out / 'metrics.json'} and {out / 'results.json'}" + (" and PR curves" if args.plots else ""))
    if args.analyze:
        _analyze(dataset.coco_ground_truth(), result.results, out / "analysis", args.confusion_thresh)
    return 0


def keep_at_least(model, max_dets: int) -> None:
    """Let the model keep ``max_dets`` detections per image when it keeps fewer (``--max-dets``
    above the model's own cap would otherwise count detections that were never made)."""
    import dataclasses

    post = model.postprocess  # a Detector and a TorchBackend both hold it
    if post is not None and dataclasses.is_dataclass(post) and post.max_detections < max_dets:
        model.postprocess = dataclasses.replace(post, max_detections=max_dets)


def tiled_results(predictor, dataset, tiling) -> list[dict]:
    """COCO results of every image of ``dataset`` predicted tiled (a TIFF file window by window)."""
    from anchordet.data.tiff_windows import is_tiff
    from anchordet.progress import Progress
    from anchordet.tiling import TensorSource, detect_tiled, open_source

    options = predictor.options(max_detections=None)
    records = getattr(dataset, "records", None)
    results: list[dict] = []
    bar = Progress(len(dataset), "evaluating", every=10, end_line=False)
    try:
        for index in range(len(dataset)):
            record = records.images[index] if records is not None else None
            if record is not None and is_tiff(record.path):
                source, image_id = open_source(record.path, str(record.path)), record.image_id
            else:
                sample = dataset[index]
                source, image_id = TensorSource(sample.image, sample.file_name or str(index)), sample.image_id
            try:
                det = detect_tiled(predictor, source, options, tiling)
            finally:
                source.close()
            results += _to_coco(det, image_id, predictor.category_ids)
            bar.update(1)
    finally:
        bar.close()
    return results


def _to_coco(det, image_id, category_ids) -> list[dict]:
    from anchordet.evaluation import detections_to_coco_results

    return detections_to_coco_results(image_id, det.boxes, det.scores, det.labels, category_ids)


def score_results(results: list[dict], dataset, metric: str, max_dets: int):
    from anchordet.engine.evaluate import EvaluationResult, make_evaluator

    evaluator = make_evaluator(metric, dataset.coco_ground_truth(), max_dets)
    if results:
        evaluator.add_results(results)
    metrics = evaluator.summarize()
    return EvaluationResult(metrics, float(metrics.stats["AP"] if metric == "coco" else metrics.mAP), results)


def _report_counting(gt: dict, results: list[dict], args, out_json: Path) -> None:
    from anchordet.cli.score import report_counting
    from anchordet.evaluation.results import DetectionStore, GroundTruth

    ground_truth = GroundTruth.load(gt)
    store = DetectionStore(ground_truth)
    if results:
        store.add_results(results)
    report_counting(ground_truth, store.arrays(), args, out_json)


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
