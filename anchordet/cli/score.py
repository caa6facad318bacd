"""``anchordet score GT.json DETECTIONS.json --metric coco|voc07|voc [--json] [--plots DIR] [--analyze]``.

Scores a COCO results file (a list of ``{image_id, category_id, bbox [x, y, w, h], score}``)
against a COCO ground-truth file. ``--json`` prints one JSON object: the 12 COCO statistics,
or ``mAP`` and ``per_class`` for the VOC metrics; otherwise a readable table.
``--analyze`` adds the error analysis (TIDE breakdown, precision / recall / F1 against the
score threshold, confusion matrix): a table, and JSON + PNG files in ``--analysis-dir``
(default: DETECTIONS_analysis/ next to the results file).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

METRICS = ("coco", "voc07", "voc")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score", help="score a COCO results file against COCO ground truth",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gt", type=Path, help="COCO ground-truth JSON")
    parser.add_argument("detections", type=Path, help="COCO results JSON (a list of detections)")
    parser.add_argument("--metric", choices=METRICS, default="coco",
                        help="coco: AP@[.5:.95] and the 12 COCO numbers; voc07: VOC2007 11-point AP; "
                             "voc: VOC2010+ area AP (both at IoU 0.5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write precision-recall curves (PNG) here")
    add_analysis_arguments(parser)
    parser.add_argument("--analysis-dir", type=Path, metavar="DIR",
                        help="with --analyze: where its files go (default: DETECTIONS_analysis/ beside the results)")
    return parser


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """``--analyze`` and ``--confusion-thresh`` (shared with ``anchordet evaluate``)."""
    parser.add_argument("--analyze", action="store_true",
                        help="error analysis: TIDE breakdown (dAP per error type), precision/recall/F1 against "
                             "the score threshold with the best-F1 threshold, confusion matrix (JSON + PNG)")
    parser.add_argument("--confusion-thresh", type=float, metavar="T",
                        help="with --analyze: score threshold of the confusion matrix (default: the best-F1 one)")


def check_analysis_arguments(args: argparse.Namespace, *dependent: str) -> None:
    """Options that only mean something with --analyze are refused without it."""
    from anchordet.errors import UserError

    for name in ("confusion_thresh", *dependent):
        if getattr(args, name) is not None and not args.analyze:
            raise UserError(f"--{name.replace('_', '-')} needs --analyze")
    if args.confusion_thresh is not None and not math.isfinite(args.confusion_thresh):
        raise UserError(f"--confusion-thresh must be a finite number, got {args.confusion_thresh}")


def run(args: argparse.Namespace) -> int:
    from anchordet.cli.main import UserError
    from anchordet.evaluation import CocoEvaluator, VocEvaluator
    from anchordet.files import load_json

    check_analysis_arguments(args, "analysis_dir")
    for path in (args.gt, args.detections):
        if not path.is_file():
            raise UserError(f"{path}: no such file")
    try:
        gt = load_json(args.gt)
        evaluator = (CocoEvaluator(gt) if args.metric == "coco"
                     else VocEvaluator(gt, iou_threshold=0.5, use_07_metric=args.metric == "voc07"))
    except ValueError as exc:
        raise UserError(f"{args.gt}: {exc}" if str(args.gt) not in str(exc) else str(exc)) from None
    try:
        results = load_json(args.detections)
        if not isinstance(results, list):
            raise ValueError(f"expected a list of detections, got a JSON {type(results).__name__}")
        evaluator.add_results(results)
    except ValueError as exc:
        raise UserError(f"{args.detections}: {exc}" if str(args.detections) not in str(exc) else str(exc)) from None
    del results  # the arrays hold everything now: free half a million dicts before evaluating
    metrics = evaluator.summarize()
    if args.json:
        print(json.dumps(metrics.stats if args.metric == "coco" else metrics.to_dict()))
    else:
        print(metrics.table())
    if args.plots is not None:
        from anchordet.evaluation.plots import plot_pr_curves

        paths = plot_pr_curves(metrics, args.plots)
        if not args.json:
            print(f"wrote {len(paths)} precision-recall plots to {args.plots}")
    if args.analyze:
        out = args.analysis_dir or args.detections.with_name(args.detections.stem + "_analysis")
        run_analysis(evaluator.gt, evaluator.detections(), out, args.confusion_thresh, quiet=args.json)
    return 0


def run_analysis(gt, dets, out: Path, confusion_thresh: float | None, quiet: bool = False) -> None:
    """Analyse, write the files, print the table (unless ``quiet``)."""
    from anchordet.evaluation.analysis import analyze
    from anchordet.evaluation.analysis_plots import write_analysis

    analysis = analyze(gt, dets, confusion_thresh)
    paths = write_analysis(analysis, out)
    if not quiet:
        print_analysis(analysis, paths, out)


def print_analysis(analysis, paths: list[Path], out: Path) -> None:
    print()
    print(analysis.table())
    print(f"wrote {', '.join(p.name for p in paths)} to {out}")
