"""``anchordet check-data DATA``: read every image and annotation of a dataset and report problems.

DATA is a dataset YAML (docs/data.md) or a COCO annotation JSON (images under ``--images``,
default the JSON's folder). Each problem is printed with the file, the image id, the annotation
index and the value; then a summary per split (images, boxes per class, box sizes, images
without objects). Exit status 1 when a problem was found, 0 when the dataset is clean.
Training runs the same checks (except decoding every image) and stops at the first problem
unless it is told to skip bad annotations.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from anchordet.cli.main import UserError
from anchordet.data.spec import DatasetSpec, load_dataset_spec, read_records
from anchordet.data.validate import (
    DatasetSummary, Problem, check_image_files, check_records, header_sizes, summarize,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("check-data", help="check a dataset's annotations and images",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="dataset YAML, or a COCO annotation JSON")
    parser.add_argument("--images", type=Path, help="image folder of a COCO JSON given directly")
    parser.add_argument("--split", action="append", help="split(s) to check (default: every split)")
    parser.add_argument("--no-decode", action="store_true",
                        help="skip decoding the images (faster; misses unreadable files and size mismatches)")
    parser.add_argument("--max-problems", type=int, default=100, help="problems printed per split (default 100)")
    return parser


def run(args: argparse.Namespace) -> int:
    spec = _spec(args)
    splits = args.split or list(spec.splits)
    total = 0
    for split in splits:
        if split not in spec.splits:
            raise UserError(f"{spec.source}: no split {split!r}; it has {', '.join(spec.splits)}")
        problems, summary = check_split(spec, split, decode=not args.no_decode)
        total += len(problems)
        print(f"== {split}: {summary.num_images} images, {len(problems)} problem(s)")
        for problem in problems[:args.max_problems]:
            print(f"  [{problem.kind}] {problem}")
        if len(problems) > args.max_problems:
            print(f"  ... and {len(problems) - args.max_problems} more (--max-problems)")
        for line in format_summary(summary):
            print(f"  {line}")
    print(f"{total} problem(s) found" if total else "no problems found")
    return 1 if total else 0


def _spec(args: argparse.Namespace) -> DatasetSpec:
    if args.data == "digits":
        raise UserError("the digits dataset is generated in memory: nothing to check "
                        "(write it with `anchordet data digits --out DIR`, then check DIR/data.yaml)")
    path = Path(args.data)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {path}")
        from anchordet.data.coco import coco_categories, load_coco_json

        names, _ = coco_categories(load_coco_json(path), path)
        images = (args.images or path.parent).resolve()
        return DatasetSpec("coco", names, {"val": {"images": images, "annotations": path.resolve()}}, str(path))
    return load_dataset_spec(path)


def check_split(spec: DatasetSpec, split: str, decode: bool = True) -> tuple[list[Problem], DatasetSummary]:
    """Every problem of a split (parse, annotations, files) and its summary."""
    records = read_records(spec, split)
    # images whose annotations state no size (CSV, VOC without <size>): their header's, so that
    # boxes outside them are dropped from the summary too (its unreadable files: listed below)
    header, _ = header_sizes(records) if decode else ({}, [])
    clean, problems = check_records(records, sizes=header)
    sizes = {}
    if decode:
        file_problems, sizes = check_image_files(clean)
        problems += file_problems
    return problems, summarize(clean, sizes)


def format_summary(summary: DatasetSummary) -> list[str]:
    """Readable lines: images, boxes per class, box sizes."""
    total_boxes = sum(summary.boxes_per_class.values())
    lines = [f"images: {summary.num_images} ({summary.num_empty} without objects)",
             f"boxes: {total_boxes} ({summary.num_ignored} ignored: iscrowd / difficult)",
             "boxes per class: " + ", ".join(f"{name} {count}" for name, count in summary.boxes_per_class.items())]
    counts = summary.size_counts
    sizes = f"box size sqrt(area) px: small (<32) {counts['small']}, medium {counts['medium']}, large (>=96) {counts['large']}"
    if summary.side_percentiles:
        sizes += "; " + ", ".join(f"{k} {v:.1f}" for k, v in summary.side_percentiles.items())
    if summary.num_unsized:
        sizes += f"; {summary.num_unsized} normalized boxes not measured (--no-decode)"
    if summary.num_unmeasurable:
        sizes += (f"; {summary.num_unmeasurable} boxes of infinite size not measured (not checked against "
                  "their images: --no-decode)")
    lines.append(sizes)
    return lines
