"""``anchordet predict``: run a model on images, folders or globs; draw and save the detections."""
from __future__ import annotations

import argparse
import glob
from pathlib import Path

from anchordet.cli.common import (
    add_device_argument, eval_transform_from_settings, load_model_for_inference, positive_int, score_threshold,
)
from anchordet.cli.main import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict", help="run a model on images and draw / save its detections",
        description="Detect objects in images. For each input writes OUT/<name>.png with the boxes, labels "
                    "and scores drawn, and OUT/detections.json: COCO results ({image_id, category_id, bbox "
                    "[x, y, w, h], score} in the original image's pixels) plus OUT/images.json mapping "
                    "image_id to the file.",
        epilog="example: anchordet predict --weights runs/retinanet_digits/model.safetensors photos/*.jpg --out preds")
    parser.add_argument("inputs", nargs="+", help="image files, folders (their images) or glob patterns")
    parser.add_argument("--weights", "-w", required=True, help="model.safetensors / best.safetensors or a .pt checkpoint")
    parser.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    parser.add_argument("--score-thresh", type=score_threshold, default=0.3,
                        help="keep detections with at least this score (default 0.3; the JSON keeps the same set)")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--min-size", type=positive_int, default=None, help="override the keep-ratio resize's shorter side")
    parser.add_argument("--max-size", type=positive_int, default=None, help="override the keep-ratio resize's longer-side cap")
    add_device_argument(parser)
    return parser


def collect_images(inputs: list[str]) -> list[Path]:
    """Files, folders (sorted, non-recursive) and globs, in order, without duplicates."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        elif any(ch in item for ch in "*?["):
            found += sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise FileNotFoundError(f"no such image, folder or pattern: {item}")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UserError(f"no images found in {' '.join(inputs)} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return unique


def run(args) -> int:
    from anchordet.data.image_io import load_image
    from anchordet.evaluation import detections_to_coco_results
    from anchordet.postprocess.rescale import rescale_detections
    from anchordet.structures.targets import Targets
    from anchordet.files import atomic_write_json
    from anchordet.visualize import draw_detections, save_picture

    paths = collect_images(args.inputs)
    model, model_config, settings, device = load_model_for_inference(args.weights, args.device)
    transform = eval_transform_from_settings(settings, {"min_size": args.min_size, "max_size": args.max_size})
    names = settings.get("class_names") or [str(i) for i in range(model_config.num_classes)]
    category_ids = settings.get("category_ids") or list(range(model_config.num_classes))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, images = [], []
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start:start + args.batch_size]
        originals = [load_image(p) for p in chunk]
        inputs = [transform(image, Targets())[0] if transform else image for image in originals]
        detections = model.predict([image.to(device) for image in inputs])
        for offset, (path, original, resized, det) in enumerate(zip(chunk, originals, inputs, detections)):
            image_id = start + offset
            det = rescale_detections(det.to("cpu"), tuple(resized.shape[-2:]), tuple(original.shape[-2:]))
            det = det.select(det.scores >= args.score_thresh)
            picture = draw_detections(original, det, names)
            save_picture(picture, out / f"{path.stem}.png")
            results += detections_to_coco_results(image_id, det.boxes, det.scores, det.labels, category_ids)
            images.append({"id": image_id, "file_name": str(path), "height": int(original.shape[1]),
                           "width": int(original.shape[2])})
            print(f"{path}: {len(det)} detections" + "".join(
                f"\n  {names[int(l)]} {float(s):.2f} [{', '.join(f'{v:.1f}' for v in b.tolist())}]"
                for b, s, l in zip(det.boxes, det.scores, det.labels)))
    atomic_write_json(out / "detections.json", results)
    atomic_write_json(out / "images.json", images, indent=1)
    print(f"wrote {len(paths)} pictures, {out / 'detections.json'} and {out / 'images.json'}")
    return 0
