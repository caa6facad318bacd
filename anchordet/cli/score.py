"""``anchordet score GT.json DETECTIONS.json --metric coco|voc07|voc [--json] [--plots DIR] [--analyze]``.

Scores a COCO results file (a list of ``{image_id, category_id, bbox [x, y, w, h], score}``)
against a COCO ground-truth file. ``--json`` prints one JSON object: the 12 COCO statistics,
or ``mAP`` and ``per_class`` for the VOC metrics; otherwise a readable table.
Beside them: precision, recall and F1 at ``--iou`` (default 0.5; DeepForest users report 0.4) and
``--score-thresh`` (default: the best-F1 threshold), overall and per image (``--prf-json FILE``
writes them all). ``--max-dets N``: COCO's ``maxDets = [1, 10, N]`` (identical to pycocotools
with those maxDets) and the P/R/F1 cap per image; an image holding more objects than N is
named on stderr, since its recall cannot reach 1.
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
    add_counting_arguments(parser)
    parser.add_argument("--prf-json", type=Path, metavar="FILE",
                        help="write precision / recall / F1 overall and per image here (JSON)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write precision-recall curves (PNG) here")
    add_analysis_arguments(parser)
    parser.add_argument("--analysis-dir", type=Path, metavar="DIR",
                        help="with --analyze: where its files go (default: DETECTIONS_analysis/ beside the results)")
    return parser


def add_counting_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-dets``, ``--iou`` and ``--score-thresh`` (shared with ``anchordet evaluate``)."""
    parser.add_argument("--max-dets", type=_at_least_10, default=100, metavar="N",
                        help="detections per image counted: COCO's maxDets [1, 10, N] (pycocotools' with "
                             "params.maxDets = [1, 10, N]; N >= 10) and the P/R/F1 cap (default 100)")
    parser.add_argument("--iou", type=_iou, default=0.5,
                        help="IoU at which precision / recall / F1 match detections to objects (default 0.5)")
    parser.add_argument("--score-thresh", type=_unit, default=None, metavar="T",
                        help="score threshold of precision / recall / F1 (default: the one of best overall F1)")


def _at_least_10(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if number < 10:
        raise argparse.ArgumentTypeError(f"expected an integer >= 10 (COCO's maxDets list is [1, 10, N]), got {number}")
    return number


def _number_in(value: str, low_open: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    ok = (0.0 < number <= 1.0) if low_open else (0.0 <= number <= 1.0)  # False for NaN too
    if not ok:
        raise argparse.ArgumentTypeError(f"expected a number in {'(0' if low_open else '[0'}, 1], got {value!r}")
    return number


def _iou(value: str) -> float:
    return _number_in(value, low_open=True)


def _unit(value: str) -> float:
    return _number_in(value, low_open=False)


def report_counting(gt, dets, args, out_json: Path | None, quiet: bool = False) -> None:
    """Warn about images with more objects than --max-dets; print (unless ``quiet``) and write
    (``out_json``) precision / recall / F1."""
    import sys

    import numpy as np

    from anchordet.evaluation.prf import precision_recall
    from anchordet.files import atomic_write_json

    counts = np.bincount(gt.image_index[~(gt.iscrowd | gt.difficult)], minlength=len(gt.image_ids))
    over = np.flatnonzero(counts > args.max_dets)
    if len(over):
        worst = over[np.argmax(counts[over])]
        print(f"warning: {len(over)} image(s) hold more objects than --max-dets {args.max_dets} counts (image id "
              f"{int(gt.image_ids[worst])}: {int(counts[worst])}); their recall cannot reach 1: raise --max-dets",
              file=sys.stderr)
    prf = precision_recall(gt, dets, args.iou, args.score_thresh, args.max_dets)
    if not quiet:
        print()
        print(prf.table())
    if out_json is not None:
        atomic_write_json(out_json, prf.to_dict(), indent=1)
        if not quiet:
            print(f"wrote {out_json}")


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
        evaluator = (CocoEvaluator(gt, max_dets=args.max_dets) if args.metric == "coco"
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
    report_counting(evaluator.gt, evaluator.detections(), args, args.prf_json, quiet=args.json)
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
