"""Run a detector exported with `anchordet export --format onnx --postprocess` in onnxruntime.

Needs only numpy, pillow and onnxruntime (not torch):

    anchordet export --weights model.safetensors --format onnx --postprocess --dynamic --out model.onnx
    python examples/onnxruntime_inference.py model.onnx photo.jpg --names person,car,dog

The exported graph takes float32 images (B, 3, H, W) in [0, 1] and normalises them itself. A
model exported with a fixed input size (SSD, or without --dynamic) gets the image resized to that
size and the boxes scaled back; a dynamic one gets it padded at the right and bottom to a
multiple of 32 (what anchordet's ImageBatch does), so boxes are already in the image's pixels.
Inputs: images and image_sizes (B, 2) int64, each image's (height, width) before padding.
Outputs: boxes (N, 4) x1 y1 x2 y2, scores (N,), labels (N,) 0..K-1, batch_index (N,).
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import onnxruntime as ort
from PIL import Image


def prepare(image: Image.Image, input_shape: list) -> tuple[np.ndarray, tuple[float, float]]:
    """PIL image -> (1, 3, H, W) float32 batch and the (x, y) factors from input to image pixels."""
    height, width = input_shape[2], input_shape[3]
    if isinstance(height, int) and isinstance(width, int):  # fixed-size model: resize
        scale = (image.width / width, image.height / height)
        image = image.resize((width, height), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        return pixels.transpose(2, 0, 1)[None].copy(), scale
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    padded = np.zeros((3, math.ceil(image.height / 32) * 32, math.ceil(image.width / 32) * 32), dtype=np.float32)
    padded[:, : image.height, : image.width] = pixels.transpose(2, 0, 1)
    return padded[None], (1.0, 1.0)


def detect(session: ort.InferenceSession, image: Image.Image, score_thresh: float = 0.3) -> list[tuple]:
    """[(label, score, (x1, y1, x2, y2))] in the image's pixels, best first."""
    input_shape = session.get_inputs()[0].shape
    batch, (sx, sy) = prepare(image.convert("RGB"), input_shape)
    # The model clips boxes to each image's size before padding: the resized size, or the original.
    height, width = (image.height, image.width) if (sx, sy) == (1.0, 1.0) else batch.shape[2:]
    feed = {"images": batch, "image_sizes": np.array([[height, width]], dtype=np.int64)}
    boxes, scores, labels, batch_index = session.run(["boxes", "scores", "labels", "batch_index"], feed)
    keep = (batch_index == 0) & (scores >= score_thresh)
    boxes = boxes[keep] * np.array([sx, sy, sx, sy], dtype=np.float32)
    return [(int(label), float(score), tuple(float(v) for v in box))
            for box, score, label in zip(boxes, scores[keep], labels[keep])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an ONNX file exported with --postprocess")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--score-thresh", type=float, default=0.3)
    parser.add_argument("--names", help="comma-separated class names (default: label numbers)")
    args = parser.parse_args(argv)
    names = args.names.split(",") if args.names else None
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    for path in args.images:
        found = detect(session, Image.open(path), args.score_thresh)
        print(f"{path}: {len(found)} detections")
        for label, score, (x1, y1, x2, y2) in found:
            name = names[label] if names else str(label)
            print(f"  {name:>12s} {score:.3f}  {x1:7.1f} {y1:7.1f} {x2:7.1f} {y2:7.1f}")


if __name__ == "__main__":
    main()
