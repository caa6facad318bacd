"""``anchordet data digits``, ``anchordet data convert`` and ``anchordet data tile``.

``data digits``: write the built-in digits dataset as a COCO dataset. Layout under ``--out``:
``images/{train,val}/*.png``, ``annotations/instances_{train,val}.json`` and ``data.yaml``
(``format: coco``), which ``load_dataset_spec`` and every COCO tool read. ``--preview PNG`` draws
a few val (test) scenes with their boxes.

``data convert SRC.yaml --to coco|voc|yolo|csv --out DIR``: write any readable dataset (a
dataset YAML, or ``digits``) in another format, with its data.yaml (``anchordet.data.convert``:
what each format keeps). DIR must not exist (or be empty); it appears only when complete.

``data tile SRC.yaml --size S --overlap F --out DIR [--min-visible V] [--empty-ratio R]``: cut
every image into overlapping tiles written as a COCO dataset, with ``tiles.json`` (each tile's
source image and offset; ``anchordet.data.tiling``).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml
from PIL import ImageDraw

from anchordet.cli.main import UserError
from anchordet.data.coco import write_coco_json
from anchordet.config.schema import DigitsOptions
from anchordet.data.digits import DigitsDataset
from anchordet.structures.targets import Targets
from anchordet.files import atomic_write_text
from anchordet.visualize import PALETTE, save_grid, save_picture, to_pil


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("data", help="write the digits dataset, convert a dataset to another format, or tile it",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_digits_parser(actions)
    convert = actions.add_parser("convert", help="write a dataset in COCO, VOC, YOLO or CSV form",
                                 description="Write every split of SRC (a dataset YAML, or 'digits') in another "
                                             "format under --out, with its data.yaml. YOLO and CSV cannot mark "
                                             "ignored (crowd / difficult) boxes: those are left out, and counted.")
    convert.add_argument("source", metavar="SRC", help="dataset YAML (docs/data.md) or 'digits'")
    convert.add_argument("--to", required=True, choices=["coco", "voc", "yolo", "csv", "deepforest"],
                         help="the format to write (deepforest: DeepForest's CSV, header and 0,0,0,0 rows)")
    convert.add_argument("--out", required=True, type=Path, help="new folder for the converted dataset")
    convert.add_argument("--link", action="store_true",
                         help="hard-link the image files instead of copying them (copies across file systems)")
    convert.set_defaults(_action=run_convert)
    add_tile_parser(actions)
    return parser


def add_tile_parser(actions) -> None:
    from anchordet.data.tiling import DEFAULT_EMPTY_RATIO, DEFAULT_MIN_VISIBLE, DEFAULT_OVERLAP

    tile = actions.add_parser("tile", help="cut large images into overlapping tiles, written as a COCO dataset",
                              description="Cut every image of every split of SRC into SIZE x SIZE tiles at its "
                                          "own resolution and write them as a COCO dataset under --out, with "
                                          "tiles.json mapping each tile to its source image and offset "
                                          "(docs/data.md, 'Large images').")
    tile.add_argument("source", metavar="SRC", help="dataset YAML (docs/data.md) or 'digits'")
    tile.add_argument("--size", required=True, type=int, help="tile side in pixels")
    tile.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP,
                      help=f"fraction of a tile shared with its neighbour (default {DEFAULT_OVERLAP})")
    tile.add_argument("--out", required=True, type=Path, help="new folder for the tiled dataset")
    tile.add_argument("--min-visible", type=float, default=DEFAULT_MIN_VISIBLE,
                      help=f"keep a cut box when at least this fraction of its area is in the tile "
                           f"(default {DEFAULT_MIN_VISIBLE})")
    tile.add_argument("--empty-ratio", type=float, default=DEFAULT_EMPTY_RATIO,
                      help=f"empty tiles kept per tile with objects, chosen at random (default {DEFAULT_EMPTY_RATIO})")
    tile.add_argument("--seed", type=int, default=0, help="seed of the choice of empty tiles")
    tile.set_defaults(_action=run_tile)


def run_tile(args: argparse.Namespace) -> int:
    from anchordet.data.spec import load_dataset_spec
    from anchordet.data.tiling import tile_dataset

    spec = load_dataset_spec(args.source)
    counts = tile_dataset(spec, args.out, args.size, args.overlap, args.min_visible, args.empty_ratio, args.seed)
    for split, count in counts.items():
        print(f"{split}: {count['images']} images -> {count['tiles']} tiles ({count['empty_tiles']} empty), "
              f"{count['boxes']} boxes")
    print(f"wrote the tiled dataset to {args.out} (describe it with {args.out / 'data.yaml'}; "
          f"tile offsets in {args.out / 'tiles.json'})")
    return 0


def add_digits_parser(actions) -> None:
    parser = actions.add_parser("digits", help="write the built-in digits dataset as a COCO dataset",
                                description="Write the built-in digits dataset as a COCO dataset (and/or a preview).")
    parser.set_defaults(_action=run_digits)
    parser.add_argument("--out", type=Path, help="output folder (images, COCO JSONs, data.yaml)")
    parser.add_argument("--num-train", type=int, default=2000, help="train scenes (default 2000)")
    parser.add_argument("--num-val", type=int, default=200, help="val scenes, drawn from the test split (default 200)")
    parser.add_argument("--canvas-size", type=int, default=128, help="scene side in pixels (default 128)")
    parser.add_argument("--digits-per-image", type=int, nargs=2, default=(1, 4), metavar=("MIN", "MAX"))
    parser.add_argument("--digit-size", type=int, nargs=2, default=(20, 56), metavar=("MIN", "MAX"),
                        help="side of a pasted digit in pixels (default 20 56)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preview", type=Path, help="also write a PNG of 6 val scenes with their boxes")


def run(args: argparse.Namespace) -> int:
    return args._action(args)


def run_convert(args: argparse.Namespace) -> int:
    from anchordet.data.convert import convert
    from anchordet.data.spec import load_dataset_spec

    spec = load_dataset_spec(args.source)
    counts = convert(spec, args.to, args.out, link=args.link)
    for split, count in counts.items():
        dropped = (f" ({count['dropped_ignored']} ignored boxes left out: {args.to.upper()} cannot mark them)"
                   if count["dropped_ignored"] else "")
        print(f"{split}: {count['images']} images, {count['boxes']} boxes{dropped}")
    print(f"wrote {args.to} dataset to {args.out} (describe it with {args.out / 'data.yaml'})")
    return 0


def run_digits(args: argparse.Namespace) -> int:
    if args.out is None and args.preview is None:
        raise UserError("give --out DIR (write the dataset) and/or --preview PNG (draw sample scenes)")
    if args.num_train < 0 or args.num_val < 0:
        raise UserError(f"--num-train and --num-val must be >= 0, got {args.num_train}, {args.num_val}")
    options = DigitsOptions(args.num_train, args.num_val, args.canvas_size, tuple(args.digits_per_image),
                            tuple(args.digit_size), args.seed)
    splits = {"train": DigitsDataset("train", options), "val": DigitsDataset("val", options)}
    if args.out is not None:
        for split, dataset in splits.items():
            write_split(dataset, args.out, split)
        spec = {"format": "coco", "root": ".", "names": list(splits["train"].class_names),
                **{s: {"images": f"images/{s}", "annotations": f"annotations/instances_{s}.json"} for s in splits}}
        atomic_write_text(args.out / "data.yaml", yaml.safe_dump(spec, sort_keys=False))
        print(f"wrote {args.num_train} train and {args.num_val} val scenes to {args.out} "
              f"(describe it with {args.out / 'data.yaml'})")
    if args.preview is not None:
        preview_dataset = DigitsDataset("val", dataclasses.replace(options, num_val=max(6, args.num_val)))
        write_preview(preview_dataset, args.preview)
        print(f"wrote {args.preview}")
    return 0


def write_split(dataset: DigitsDataset, out: Path, split: str) -> None:
    """PNG files under ``out/images/<split>`` and ``out/annotations/instances_<split>.json``."""
    folder = out / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    gt = dataset.coco_ground_truth()
    for index in range(len(dataset)):
        image, _ = dataset.scene(index)
        save_picture(to_pil(image), folder / dataset.file_name(index))
    write_coco_json(out / "annotations" / f"instances_{split}.json", gt)


def draw_targets(image, targets: Targets, class_names: list[str], scale: int = 2):
    """A PIL picture of ``image`` (3, H, W) enlarged ``scale`` times with its boxes and labels."""
    picture = to_pil(image)
    picture = picture.resize((picture.width * scale, picture.height * scale))
    draw = ImageDraw.Draw(picture)
    for box, label in zip(targets.boxes.tolist(), targets.labels.tolist()):
        colour = PALETTE[label % len(PALETTE)]
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=colour, width=2)
        draw.rectangle((x1, max(0, y1 - 12), x1 + 8, max(0, y1 - 12) + 11), fill=colour)
        draw.text((x1 + 2, max(0, y1 - 12)), class_names[label], fill=(0, 0, 0))
    return picture


def write_preview(dataset: DigitsDataset, path: Path, count: int = 6, columns: int = 3) -> Path:
    """A grid of the first ``count`` scenes with their boxes and labels (the gt, exactly)."""
    scale = 2 if dataset.options.canvas_size < 128 else 1  # small scenes are enlarged to keep labels legible
    pictures = [draw_targets(*dataset.scene(i), dataset.class_names, scale) for i in range(min(count, len(dataset)))]
    return save_grid(pictures, path, columns=columns)
