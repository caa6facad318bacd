"""``anchordet predict``: run a model on images, folders, globs and videos; draw and save the detections.

The work is ``anchordet.load(weights).stream(...)`` (images) and ``.predict_video(...)``
(videos): the same object a Python user gets. An image or video that cannot be read (a video
of 0 frames included) is skipped with one line, counted in the summary and makes the exit
status 1; the inputs after it are read, and what was written stays written. Temporary files
that an earlier, killed run left in the output folder are removed first (``files.remove_stale_temp_files``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anchordet.cli.common import add_device_argument, add_precision_argument
from anchordet.cli.main import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".gif")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict", help="run a model on images and draw / save its detections",
        description="Detect objects in images and videos. For each image writes OUT/<name>.png with the boxes,\n"
                    "labels and scores drawn (small images enlarged to about 400 px), for each video\n"
                    "OUT/<name>.mp4; and OUT/detections.json: COCO results ({image_id, category_id, bbox\n"
                    "[x, y, w, h], score} in the original image's pixels) plus OUT/images.json mapping image_id\n"
                    "to the file (and the frame of a video). Inputs with the same name in different folders\n"
                    "get distinct output names. An unreadable image, video or frame is skipped with one line\n"
                    "and counted; the exit status is then 1.",
        epilog="examples:\n"
               "  anchordet predict --weights runs/retinanet_digits/model.safetensors photos/*.jpg --out preds\n"
               "  anchordet predict -w model.safetensors clip.mp4 --classes person,dog --save-txt\n"
               "  anchordet predict -w model.safetensors rtsp://camera/stream /dev/video0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files, folders (their images), glob patterns, video files, "
                                                  "URLs FFmpeg opens (rtsp://, http://) or capture devices "
                                                  "(/dev/video0)")
    parser.add_argument("--weights", "-w", required=True, help="model.safetensors / best.safetensors or a .pt checkpoint")
    parser.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    parser.add_argument("--score-thresh", type=float, default=0.3,
                        help="keep detections with a score above this (default 0.3; the JSON keeps the same set)")
    parser.add_argument("--classes", default=None, metavar="A,B,...",
                        help="keep only these classes: comma-separated class names or labels 0..K-1")
    parser.add_argument("--nms-thresh", type=float, default=None, help="IoU of the per-class NMS (default: the model's)")
    parser.add_argument("--class-agnostic-nms", action="store_true",
                        help="also suppress overlapping boxes of different classes (one box per object)")
    parser.add_argument("--max-det", type=int, default=None, help="detections per image (default: the model's)")
    parser.add_argument("--save-txt", action="store_true",
                        help="also write OUT/labels/<name>.txt per image: YOLO lines 'class cx cy w h' (normalized)")
    parser.add_argument("--no-draw", action="store_true", help="write no pictures or annotated videos, only the JSON")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--min-size", type=int, default=None,
                        help="override the keep-ratio resize's shorter side (refused for fixed-size models: SSD)")
    parser.add_argument("--max-size", type=int, default=None,
                        help="override the keep-ratio resize's longer-side cap (refused for fixed-size models)")
    add_device_argument(parser)
    add_precision_argument(parser)
    return parser


def is_video(item: str) -> bool:
    """A video file (by suffix), a URL (scheme://) or a capture device (/dev/video*)."""
    return "://" in item or item.startswith("/dev/video") or Path(item).suffix.lower() in VIDEO_SUFFIXES


def run(args) -> int:
    from anchordet.files import AtomicJsonListWriter
    from anchordet.predictor import collect_images, load

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    videos = [item for item in args.inputs if is_video(item)]
    image_inputs = [item for item in args.inputs if not is_video(item)]
    for video in videos:  # a missing input stops the run before anything is written, as for images
        if "://" not in video and not video.startswith("/dev/video") and not Path(video).is_file():
            raise UserError(f"no such video file: {video}")
    paths = collect_images(image_inputs) if image_inputs else []
    predictor = load(args.weights, args.device, min_size=args.min_size, max_size=args.max_size,
                     precision=args.precision)
    options = dict(score_thresh=args.score_thresh, classes=_classes(args.classes), nms_thresh=args.nms_thresh,
                   max_detections=args.max_det, class_agnostic_nms=args.class_agnostic_nms)
    predictor.options(**options)  # checks the values before anything is written
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(out)
    names = unique_output_names(paths + [Path(v) for v in videos])
    tally = {"images": 0, "frames": 0, "skipped": 0}
    with AtomicJsonListWriter(out / "detections.json") as results, \
            AtomicJsonListWriter(out / "images.json", indent=0) as images:
        if paths:
            _predict_images(predictor, paths, names, options, args, results, images, tally)
        for video in videos:
            _predict_video(predictor, video, names[Path(video)], options, args, results, images, tally)
    skipped = f", skipped {tally['skipped']} unreadable" if tally["skipped"] else ""
    what = "pictures" if not args.no_draw else "images (no pictures: --no-draw)"
    print(f"predicted {tally['images']} {what}" + (f" and {tally['frames']} video frames" if videos else "")
          + f"{skipped}; wrote {out / 'detections.json'} and {out / 'images.json'}")
    return 1 if tally["skipped"] else 0


def _remove_stale_temp_files(out: Path) -> None:
    """What a killed run (kill -9) left: its temporary files, held by no live process."""
    from anchordet.files import remove_stale_temp_files

    removed = remove_stale_temp_files(out) + remove_stale_temp_files(out / "labels")
    if removed:
        print(f"anchordet predict: removed {len(removed)} temporary file(s) of an interrupted run from {out}",
              file=sys.stderr, flush=True)


def _classes(text: str | None) -> list[str | int] | None:
    if text is None:
        return None
    items = [c.strip() for c in text.split(",") if c.strip()]
    if not items:
        raise UserError(f"--classes {text!r}: give comma-separated class names or labels")
    return items


def _predict_images(predictor, paths, names, options, args, results, images, tally) -> None:
    from anchordet.predictor import Skipped

    out = Path(args.out)
    for item in predictor.stream(paths, batch_size=args.batch_size, skip_unreadable=True, **options):
        if isinstance(item, Skipped):
            print(f"anchordet predict: skipped {item.source}: {item.reason}", file=sys.stderr, flush=True)
            tally["skipped"] += 1
            continue
        image_id = tally["images"] + tally["frames"]
        name = names[Path(item.source)]
        if not args.no_draw:
            _save_picture(item, out / f"{name}.png")
        if args.save_txt:
            write_yolo_txt(out / "labels" / f"{name}.txt", item)
        results.extend(item.to_coco(image_id))
        images.append({"id": image_id, "file_name": item.source, "height": item.image_size[0],
                       "width": item.image_size[1], "output": None if args.no_draw else f"{name}.png"})
        tally["images"] += 1
        print(f"{item.source}: {len(item)} detections" + "".join(
            f"\n  {n} {float(s):.2f} [{', '.join(f'{v:.1f}' for v in b.tolist())}]"
            for n, s, b in zip(item.names, item.scores, item.boxes)), flush=True)


def _predict_video(predictor, video, name, options, args, results, images, tally) -> None:
    """One video; one that cannot be opened, or whose stream breaks, is skipped with one line
    like an unreadable image (the frames done before a break are kept), and so is one of 0 frames."""
    from anchordet.video import FrameError, VideoError

    out = Path(args.out)
    target = None if args.no_draw else out / f"{name}.mp4"
    first_id = tally["images"] + tally["frames"]
    count = 0
    try:
        frames = predictor.predict_video(video, out=target, batch_size=args.batch_size, draw=not args.no_draw,
                                         on_bad_frame=lambda exc: _skip_frame(exc, tally), **options)
        for prediction in frames:
            image_id = first_id + count
            results.extend(prediction.to_coco(image_id))
            images.append({"id": image_id, "file_name": video, "frame": prediction.frame,
                           "height": prediction.image_size[0], "width": prediction.image_size[1]})
            if args.save_txt:
                write_yolo_txt(out / "labels" / f"{name}_{prediction.frame:06d}.txt", prediction)
            count += 1
    except (VideoError, FrameError) as exc:
        after = f" after {count} frames" if count else ""
        print(f"anchordet predict: skipped {exc}{after}", file=sys.stderr, flush=True)
        tally["skipped"] += 1
        tally["frames"] += count
        return
    tally["frames"] += count
    if not count:
        print(f"anchordet predict: skipped {video}: no frame decoded (nothing written)", file=sys.stderr, flush=True)
        tally["skipped"] += 1
        return
    print(f"{video}: {count} frames" + (f"; wrote {target}" if target else ""), flush=True)


def _skip_frame(exc, tally) -> None:
    print(f"anchordet predict: skipped {exc}", file=sys.stderr, flush=True)
    tally["skipped"] += 1


def _save_picture(prediction, path: Path) -> None:
    from anchordet.files import atomic_write
    from anchordet.data.image_io import as_image_tensor
    from anchordet.visualize import draw_detections, readable_scale

    image = as_image_tensor(Path(prediction.source), prediction.source)
    picture = draw_detections(image, prediction.detections, prediction.class_names,
                              scale=readable_scale(*prediction.image_size))
    atomic_write(path, lambda f: picture.save(f, format="PNG"))


def write_yolo_txt(path: Path, prediction) -> None:
    """One line per detection: ``label cx cy w h`` normalized by the image's width and height
    (the YOLO label format, readable back as a dataset)."""
    from anchordet.files import atomic_write_text

    height, width = prediction.image_size
    lines = []
    for (x1, y1, x2, y2), label in zip(prediction.boxes.tolist(), prediction.labels.tolist()):
        lines.append(f"{label} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                     f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def unique_output_names(paths: list[Path]) -> dict[Path, str]:
    """An output name (no suffix) per input, distinct for all inputs: the file's stem, or when two
    inputs share it, the stem with its extension and as many parent folders as make it unique
    (``a/x.jpg``, ``b/x.jpg`` -> ``a_x_jpg``, ``b_x_jpg``); a counter as the last resort."""
    from collections import defaultdict

    by_stem: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        by_stem[_safe(path.stem)].append(path)
    names: dict[Path, str] = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            names[group[0]] = stem
            continue
        depth = 0
        while True:
            candidates = {p: _with_parents(p, depth) for p in group}
            if len(set(candidates.values())) == len(group) or depth > max(len(p.parts) for p in group):
                break
            depth += 1
        names.update(candidates)
    used: set[str] = set()
    for path in paths:  # the last resort: two names that still collide get a counter
        name, count = names[path], 1
        while name in used:
            count += 1
            name = f"{names[path]}_{count}"
        names[path] = name
        used.add(name)
    return names


def _with_parents(path: Path, depth: int) -> str:
    own = _safe(path.stem + ("_" + path.suffix.lstrip(".") if path.suffix else ""))
    parents = [_safe(p) for p in path.parent.parts[len(path.parent.parts) - depth:]] if depth else []
    return "_".join(parents + [own])


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_") or "input"
