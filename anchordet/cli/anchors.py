"""``anchordet anchors``: does a model's anchor configuration fit a dataset?

Builds the model of a config, takes its training anchors and matcher (its ``training_anchors``,
through ``analysis.anchors.model_anchors``) and runs them over the dataset's gt boxes, resized as
training resizes them (``analysis.anchors.coverage``). Optionally searches anchor sizes and
ratios (``analysis.anchors.suggest``) and draws plots (``analysis.anchors.plots``). See
docs/anchors.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter

from anchordet.cli.common import add_config_arguments, load_config_or_fail, positive_int
from anchordet.cli.main import UserError

SHOWN_UNCOVERED = 20


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "anchors", help="does a model's anchor configuration fit a dataset?",
        description="Run the model's own anchor generator and training matcher over a dataset's boxes (at the "
                    "training input size) and report which boxes the anchors can learn, by object size and class.",
        epilog="example: anchordet anchors --config retinanet_digits --data digits --suggest --plots runs/anchors")
    add_config_arguments(parser)
    parser.add_argument("--data", help="dataset YAML or 'digits' (default: the config's data.dataset)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"), help="split (default train)")
    parser.add_argument("--max-images", type=int, default=None, metavar="N", help="analyse the first N images only")
    parser.add_argument("--suggest", action="store_true",
                        help="search anchor sizes and ratios (same anchors per location) and print the --set "
                             "overrides that apply the best")
    parser.add_argument("--search-images", type=positive_int, default=500, metavar="N",
                        help="images sampled for each step of the --suggest search (default 500)")
    parser.add_argument("--plots", metavar="DIR", help="write best_iou.png and box_shapes.png to DIR")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    return parser


def run(args) -> int:
    from anchordet.analysis.anchors.coverage import analyze_coverage, read_dataset_boxes
    from anchordet.analysis.anchors.model_anchors import detector_anchors

    if args.max_images is not None and args.max_images < 1:
        raise UserError(f"--max-images must be >= 1, got {args.max_images}")
    config = load_config_or_fail(args.config, args.overrides)
    data = dataclasses.replace(config.data, dataset=args.data) if args.data else config.data
    dataset = read_dataset_boxes(data, args.split, args.max_images)
    if not dataset.images:
        raise UserError(f"{data.dataset}: split {args.split!r} has no images")
    anchors = detector_anchors(config.model.build(), config.model.factory, dataset.images[0].input_size)
    report = analyze_coverage(dataset.images, anchors.at)
    result = report_dict(report, dataset, anchors, data, args.split)
    suggestion = None
    if args.suggest:
        from anchordet.analysis.anchors.suggest import sample_images, suggest_anchors

        suggestion = suggest_anchors(anchors, sample_images(dataset.images, args.search_images))
        after = analyze_coverage(dataset.images, anchors.with_generator(suggestion.generator).at)
        better = (after.summary().get("confident", 0.0), after.summary().get("best_iou_mean", 0.0)) > \
            (report.summary().get("confident", 0.0), report.summary().get("best_iou_mean", 0.0))
        result["suggestion"] = {"overrides": suggestion.overrides, "evaluated": suggestion.evaluated, "better": better,
                                "kept_current": suggestion.generator is anchors.generator,
                                "search_images": min(args.search_images, len(dataset.images)),
                                "after": _rounded(after.summary()), "after_by_size": _by_size(after)}
    if args.plots:
        from anchordet.analysis.anchors.plots import plot_best_iou, plot_box_shapes

        generators = {"current": anchors.generator}
        if suggestion is not None and suggestion.generator is not anchors.generator:
            generators["suggested"] = suggestion.generator
        reports = {"current": report} if suggestion is None else {"current": report, "suggested": after}
        matcher = anchors.at(dataset.images[0].input_size).matcher
        result["plots"] = [str(plot_best_iou(reports, args.plots, matcher)),
                           str(plot_box_shapes(report, generators, args.plots))]
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 0


def _rounded(summary: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()}


def _by_size(report) -> dict:
    return {name: _rounded(values) for name, values in report.by_size().items()}


def report_dict(report, dataset, anchors, data, split: str) -> dict:
    """Everything the report shows, as plain JSON values."""
    from anchordet.analysis.anchors.model_anchors import anchors_per_location

    matcher = anchors.at(dataset.images[0].input_size).matcher
    counts, edges = report.best_iou_histogram(10)
    sizes = Counter(tuple(i.input_size) for i in dataset.images)
    per_location = anchors_per_location(anchors.generator)
    return {
        "detector": anchors.kind,
        "anchors_per_location": per_location,
        "matcher": {"positive": matcher.high_threshold, "negative": matcher.low_threshold,
                    "low_quality": matcher.low_quality},
        "dataset": data.dataset, "split": split, "images": dataset.num_images, "skipped": dataset.skipped,
        "input_sizes": {f"{h}x{w}": n for (h, w), n in sizes.most_common(5)},
        "distinct_input_sizes": len(sizes),
        "all": _rounded(report.summary()),
        "by_size": _by_size(report),
        "by_class": {name: _rounded(s) for name, s in zip(dataset.class_names, report.by_class(len(dataset.class_names)))},
        "best_iou_histogram": {"edges": [round(e, 2) for e in edges.tolist()], "counts": [int(c) for c in counts]},
        "uncovered": report.uncovered(),
    }


def _row(name: str, s: dict) -> str:
    if not s.get("boxes"):
        return f"  {name:<12} {0:>7}"
    return (f"  {name:<12} {s['boxes']:>7} {s['covered']:>8.1%} {s['confident']:>10.1%} {s['low_quality_only']:>9.1%}"
            f" {s['positives_mean']:>8.2f} {s['positives_median']:>6.0f} {s['best_iou_mean']:>9.3f}")


def format_report(r: dict) -> str:
    m = r["matcher"]
    lines = [
        f"{r['detector']} anchors, {r['anchors_per_location']} per location; matcher: positive IoU >= {m['positive']:g}, "
        f"negative < {m['negative']:g}, low-quality matches: {m['low_quality']}",
        f"dataset {r['dataset']} ({r['split']}): {r['images']} images, {r['all'].get('boxes', 0)} boxes; skipped "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["skipped"].items()),
        f"input sizes (after the training resize): {r['distinct_input_sizes']} distinct; most common "
        + ", ".join(f"{k} ({n})" for k, n in r["input_sizes"].items()),
        "",
        f"  {'boxes':<12} {'count':>7} {'covered':>8} {'IoU>=pos':>10} {'low-q only':>9} {'pos/gt':>8} {'median':>6} "
        f"{'best IoU':>9}",
        _row("all", r["all"]),
        *(_row(name, s) for name, s in r["by_size"].items()),
        "  by class:",
        *(_row(str(name), s) for name, s in r["by_class"].items()),
        "",
        "best IoU histogram: " + "  ".join(f"[{a:.1f},{b:.1f}) {c}" for a, b, c in zip(
            r["best_iou_histogram"]["edges"][:-1], r["best_iou_histogram"]["edges"][1:], r["best_iou_histogram"]["counts"])),
    ]
    uncovered = r["uncovered"]
    lines.append(f"boxes no anchor can learn (no positive anchor): {len(uncovered)}"
                 + (f", worst {SHOWN_UNCOVERED}:" if len(uncovered) > SHOWN_UNCOVERED else (":" if uncovered else "")))
    for u in uncovered[:SHOWN_UNCOVERED]:
        lines.append(f"  image {u['image_id']}  class {u['label']}  box {u['box']}  best IoU {u['best_iou']:.3f}")
    if "suggestion" in r:
        s = r["suggestion"]
        lines += ["", f"suggested anchors (searched {s['evaluated']} settings on {s['search_images']} images):",
                  _row("after, all", s["after"]), *(_row(f"after, {k}", v) for k, v in s["after_by_size"].items()),
                  "apply with: " + " ".join(f"--set '{o}'" for o in s["overrides"])]
        if s["kept_current"]:
            lines[-1] = "no searched setting beats the current anchors on the sample: keep them"
        elif not s["better"]:
            lines.append("(on all the images this is no better than the current anchors: keep them, or search more "
                         "images with --search-images)")
    if "plots" in r:
        lines.append("wrote " + " and ".join(r["plots"]))
    return "\n".join(lines)
