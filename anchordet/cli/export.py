"""``anchordet export``: a trained model to ONNX (optionally with post-processing) or TorchScript."""
from __future__ import annotations

import argparse
from pathlib import Path

from anchordet.cli.common import positive_int
from anchordet.cli.main import UserError
from anchordet.files import atomic_path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX or TorchScript",
        description="Export a model's network (forward: RetinaNet / SSD class logits, box deltas and anchors; "
                    "Faster R-CNN features, RPN objectness, RPN deltas and anchors) to ONNX or TorchScript. "
                    "--postprocess appends the post-processing (Faster R-CNN: proposals, RoI pooling, RoI head and "
                    "its post-processing) with NMS inside, so the outputs are boxes, scores, labels and "
                    "batch_index. Inputs are float32 images (B, 3, H, W) in [0, 1] (and with --postprocess "
                    "image_sizes (B, 2) int64, each image's height and width before padding); see docs/export.md "
                    "and examples/onnxruntime_inference.py.",
        epilog="example: anchordet export --weights model.safetensors --format onnx --dynamic --postprocess "
               "--out model.onnx --check")
    parser.add_argument("--weights", "-w", required=True, help="model.safetensors or a .pt checkpoint")
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    parser.add_argument("--out", required=True, help="the file to write (.onnx / .pt)")
    parser.add_argument("--dynamic", action="store_true",
                        help="ONNX: batch size, height and width free (SSD: batch size only); else fixed to --size "
                             "(TorchScript is always traced with free sizes)")
    parser.add_argument("--postprocess", action="store_true",
                        help="include the post-processing (score threshold, NMS, top-k): outputs are detections")
    parser.add_argument("--size", type=positive_int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="example input size (default: the model's fixed size, else 512 512); RetinaNet: "
                             "multiples of 32, Faster R-CNN: of 16")
    parser.add_argument("--batch-size", type=positive_int, default=1, help="example batch size (default 1)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--check", action="store_true",
                        help="run the exported file (onnxruntime / torch.jit.load) and compare it with eager PyTorch "
                             "(forward, or with --postprocess predict)")
    return parser


def run(args) -> int:
    from anchordet.cli.common import load_model_for_inference
    from anchordet.export.onnx import default_example_size

    model, config, settings, _ = load_model_for_inference(args.weights, "cpu")
    size = tuple(args.size) if args.size else default_example_size(model)
    _check_size(model, size)
    path = Path(args.out)
    with atomic_path(path) as tmp:  # a failed export (or a full disk) leaves no half-written file
        if args.format == "onnx":
            from anchordet.export.onnx import export_onnx

            # The eval resize and class names travel with the file (examples/onnxruntime_inference.py reads them).
            export_onnx(model, tmp, postprocess=args.postprocess, dynamic=args.dynamic, example_size=size,
                        batch_size=args.batch_size, opset=args.opset, metadata=settings.to_metadata())
        else:
            from anchordet.export.torchscript import export_torchscript

            export_torchscript(model, tmp, example_size=size, batch_size=args.batch_size, postprocess=args.postprocess)
    shape = "dynamic" if args.dynamic or args.format == "torchscript" else f"{args.batch_size}x3x{size[0]}x{size[1]}"
    print(f"wrote {path}: {config.factory} as {args.format} ({'detections' if args.postprocess else 'raw outputs'}, "
          f"input {shape})")
    if args.check:
        return _check(model, path, args, size)
    return 0


def _check_size(model, size: tuple[int, int]) -> None:
    side = model.fixed_size
    if side is not None and tuple(size) != (side, side):
        raise UserError(f"--size {size[0]} {size[1]}: this {type(model).__name__} takes {side} x {side} inputs")
    step = model.size_divisible
    if any(s % step for s in size):
        raise UserError(f"--size {size[0]} {size[1]}: sides must be multiples of {step} for this model")


def _check(model, path, args, size) -> int:
    """Compare the exported file with eager PyTorch on random images (``forward``, or ``predict``
    with --postprocess); exit 1 beyond 1e-4."""
    import numpy as np
    import torch

    images = torch.rand(args.batch_size, 3, *size)
    sizes = torch.tensor([list(size)] * args.batch_size)
    if args.format == "torchscript":
        with torch.no_grad():
            loaded = torch.jit.load(str(path))
            got = list(loaded(images, sizes) if args.postprocess else loaded(images))
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path))
        feed = {"images": images.numpy()}
        if args.postprocess:
            feed["image_sizes"] = sizes.numpy().astype(np.int64)
        got = [torch.from_numpy(v) for v in session.run(None, feed)]
    if args.postprocess:
        expected = _flatten(model.predict(images))
        worst = _detections_difference(got, expected)
    else:
        with torch.no_grad():
            expected = list(model(images))[: len(got)]
        if any(g.shape != e.shape for g, e in zip(got, expected)):
            print(f"check: FAILED, shapes {[tuple(g.shape) for g in got]} vs eager {[tuple(e.shape) for e in expected]}")
            return 1
        worst = max(((g.double() - e.double()).abs().max().item() if g.numel() else 0.0) for g, e in zip(got, expected))
    print(f"check: largest difference from eager PyTorch {worst:.3g} ({'ok' if worst <= 1e-4 else 'FAILED'})")
    return 0 if worst <= 1e-4 else 1


def _flatten(detections: list) -> list:
    """``predict``'s per-image detections as flat (boxes, scores, labels, batch_index)."""
    import torch

    index = [torch.full((len(d),), i, dtype=torch.int64) for i, d in enumerate(detections)]
    return [torch.cat([d.boxes for d in detections]), torch.cat([d.scores for d in detections]),
            torch.cat([d.labels for d in detections]), torch.cat(index)]


def _detections_difference(got, expected, score_tol: float = 1e-5) -> float:
    """Largest box difference between two flat detection sets (boxes, scores, labels,
    batch_index), pairing each expected detection with an unused one of the same image and label
    whose score is within ``score_tol`` (order among near-equal scores is free); inf if any
    detection has no partner."""
    boxes, scores, labels, batch_index = got
    if len(boxes) != len(expected[0]):
        return float("inf")
    free = [True] * len(boxes)
    worst = 0.0
    for box, score, label, image in zip(*expected):
        candidates = [i for i in range(len(boxes)) if free[i] and labels[i] == label and batch_index[i] == image
                      and abs(float(scores[i] - score)) <= score_tol]
        if not candidates:
            return float("inf")
        best = min(candidates, key=lambda i: float((boxes[i] - box).abs().max()))
        free[best] = False
        worst = max(worst, float((boxes[best] - box).abs().max()))
    return worst
