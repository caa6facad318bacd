"""Run a detector exported with `anchordet export --format onnx --postprocess` in onnxruntime.

Needs only numpy, pillow and onnxruntime (not torch):

    anchordet export --weights model.safetensors --format onnx --postprocess --dynamic --out model.onnx
    python examples/onnxruntime_inference.py model.onnx photo.jpg --names person,car,dog

Each image is prepared as `anchordet predict` prepares it: resized with the model's eval resize,
which `anchordet export` copies from the weights file into the ONNX metadata (`anchordet_inference`:
shorter side to `min_size` with the longer side at most `max_size`, or a fixed square), then
padded with 0 at the right and bottom to a multiple of `anchordet_size_divisible` (or to the
input size of a model exported without --dynamic). Boxes come back in the resized image's pixels
and are scaled to the original image's. A file without that metadata gets no resize (a model with
a fixed input size, e.g. SSD, gets the image resized to that size).

Graph inputs: images (B, 3, H, W) float32 in [0, 1] (the graph normalises), image_sizes (B, 2)
int64, each image's (height, width) before padding. Outputs: boxes (N, 4) x1 y1 x2 y2, scores
(N,), labels (N,) 0..K-1, batch_index (N,).
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import onnxruntime as ort
from PIL import Image


def eval_size(height: int, width: int, settings: dict, input_shape: list) -> tuple[int, int]:
    """The (height, width) the model was evaluated at for an image of (height, width)."""
    kind = settings.get("eval_transform")
    if kind == "resize":  # anchordet.data.transforms.keep_ratio_size
        scale = min(settings["min_size"] / min(height, width), settings["max_size"] / max(height, width))
        return max(1, round(height * scale)), max(1, round(width * scale))
    if kind == "fixed":
        return int(settings["fixed_size"]), int(settings["fixed_size"])
    if isinstance(input_shape[2], int) and isinstance(input_shape[3], int):
        return input_shape[2], input_shape[3]  # no eval resize known, a fixed-size model: its size
    return height, width


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] -> (h, w, 3): bilinear, antialiased when shrinking, each channel
    in float (PIL's "F" mode), as torch's ``interpolate(..., antialias=True)`` that anchordet's
    resize uses."""
    if pixels.shape[:2] == size:
        return pixels
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., c]))
                           .resize((size[1], size[0]), Image.BILINEAR)) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def prepare(image: Image.Image, session: ort.InferenceSession) -> tuple[np.ndarray, tuple[int, int]]:
    """PIL image -> the (1, 3, H, W) float32 input and the resized (height, width) before padding."""
    meta = session.get_modelmeta().custom_metadata_map
    settings = json.loads(meta.get("anchordet_inference", "{}"))
    multiple = int(meta.get("anchordet_size_divisible", "32"))
    input_shape = session.get_inputs()[0].shape
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    pixels = resize(pixels, eval_size(image.height, image.width, settings, input_shape))
    height, width = pixels.shape[:2]
    if isinstance(input_shape[2], int) and isinstance(input_shape[3], int):  # exported without --dynamic
        padded_size = (input_shape[2], input_shape[3])
        if height > padded_size[0] or width > padded_size[1]:
            raise SystemExit(f"the model takes {padded_size[0]} x {padded_size[1]} inputs but the eval resize gives "
                             f"{height} x {width}: export it with --dynamic (or a larger --size)")
    else:
        padded_size = (math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple)
    batch = np.zeros((1, 3, *padded_size), dtype=np.float32)
    batch[0, :, :height, :width] = pixels.transpose(2, 0, 1)
    return batch, (height, width)


def detect(session: ort.InferenceSession, image: Image.Image, score_thresh: float = 0.3) -> list[tuple]:
    """[(label, score, (x1, y1, x2, y2))] in the image's own pixels, best first."""
    batch, (height, width) = prepare(image, session)
    feed = {"images": batch, "image_sizes": np.array([[height, width]], dtype=np.int64)}
    boxes, scores, labels, batch_index = session.run(["boxes", "scores", "labels", "batch_index"], feed)
    keep = (batch_index == 0) & (scores >= score_thresh)
    # back to the original image (anchordet.postprocess.rescale_detections): scale, then clip
    scale = np.array([image.width / width, image.height / height] * 2, dtype=np.float32)
    boxes = np.minimum(np.maximum(boxes[keep] * scale, 0), np.array([image.width, image.height] * 2, np.float32))
    return [(int(label), float(score), tuple(float(v) for v in box))
            for box, score, label in zip(boxes, scores[keep], labels[keep])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an ONNX file exported with --postprocess")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--score-thresh", type=float, default=0.3)
    parser.add_argument("--names", help="comma-separated class names (default: the file's, else label numbers)")
    args = parser.parse_args(argv)
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    stored = json.loads(session.get_modelmeta().custom_metadata_map.get("anchordet_inference", "{}"))
    names = args.names.split(",") if args.names else stored.get("class_names")
    for path in args.images:
        found = detect(session, Image.open(path), args.score_thresh)
        print(f"{path}: {len(found)} detections")
        for label, score, (x1, y1, x2, y2) in found:
            name = names[label] if names else str(label)
            print(f"  {name:>12s} {score:.3f}  {x1:7.1f} {y1:7.1f} {x2:7.1f} {y2:7.1f}")


if __name__ == "__main__":
    main()
