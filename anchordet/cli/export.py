"""``anchordet export``: a trained model to ONNX (optionally with post-processing), OpenVINO IR or
TorchScript; ``--int8`` quantizes ONNX (onnxruntime) and OpenVINO (NNCF) files after training,
calibrated on images of a dataset. The exported files carry the metadata ``anchordet.load`` reads."""
from __future__ import annotations

import argparse
from pathlib import Path

from anchordet.cli.common import positive_int
from anchordet.cli.main import UserError
from anchordet.files import atomic_path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX, OpenVINO or TorchScript (optionally INT8)",
        description="Export a model's network (forward: RetinaNet / SSD class logits, box deltas and anchors; "
                    "Faster R-CNN features, RPN objectness, RPN deltas and anchors) to ONNX, OpenVINO IR (.xml + .bin) or "
                    "TorchScript; --int8 quantizes ONNX and OpenVINO files (post-training, calibrated on --calib). "
                    "--postprocess appends the post-processing (Faster R-CNN: proposals, RoI pooling, RoI head and "
                    "its post-processing) with NMS inside, so the outputs are boxes, scores, labels and "
                    "batch_index. Inputs are float32 images (B, 3, H, W) in [0, 1] (and with --postprocess "
                    "image_sizes (B, 2) int64, each image's height and width before padding); see docs/export.md "
                    "and examples/onnxruntime_inference.py. anchordet predict / evaluate / benchmark take the "
                    "exported .onnx / .xml as --weights.",
        epilog="examples:\n  anchordet export --weights model.safetensors --format onnx --dynamic --postprocess "
               "--out model.onnx --check\n  anchordet export -w model.safetensors --format openvino --dynamic --int8 "
               "--calib data.yaml --out model.xml --check",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", "-w", required=True, help="model.safetensors or a .pt checkpoint")
    parser.add_argument("--format", required=True, choices=("onnx", "openvino", "torchscript"))
    parser.add_argument("--out", required=True, help="the file to write (.onnx / .xml (its .bin beside it) / .pt)")
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
    parser.add_argument("--int8", action="store_true",
                        help="post-training INT8 quantization of the convolutions (onnx: onnxruntime static QDQ; "
                             "openvino: NNCF), calibrated on --calib")
    parser.add_argument("--calib", metavar="DATA",
                        help="with --int8: a dataset YAML or 'digits', whose training images (eval-resized as the model) "
                             "calibrate the quantization ranges")
    parser.add_argument("--calib-images", type=positive_int, default=300,
                        help="with --int8: number of calibration images (default 300)")
    parser.add_argument("--check", action="store_true",
                        help="run the exported file (onnxruntime / OpenVINO / torch.jit.load) and compare it with eager "
                             "PyTorch (forward, or detections); prints the differences")
    return parser


def run(args) -> int:
    from anchordet.cli.common import load_model_for_inference
    from anchordet.export.onnx import default_example_size

    _check_arguments(args)
    model, config, settings, _ = load_model_for_inference(args.weights, "cpu")
    size = tuple(args.size) if args.size else default_example_size(model)
    _check_size(model, size)
    path = Path(args.out)
    if args.format == "torchscript":
        from anchordet.export.torchscript import export_torchscript

        with atomic_path(path) as tmp:  # a failed export (or a full disk) leaves no half-written file
            export_torchscript(model, tmp, example_size=size, batch_size=args.batch_size, postprocess=args.postprocess)
    else:
        _export_onnx_or_openvino(model, config, settings, size, path, args)
    shape = "dynamic" if args.dynamic or args.format == "torchscript" else f"{args.batch_size}x3x{size[0]}x{size[1]}"
    print(f"wrote {path}: {config.factory} as {args.format}{' int8' if args.int8 else ''} "
          f"({'detections' if args.postprocess else 'raw outputs'}, input {shape})")
    if args.check:
        if args.format == "openvino" or args.int8:
            return _check_backend(model, path, args, size)
        return _check(model, path, args, size)
    return 0


def _check_arguments(args) -> None:
    if args.int8 and args.format == "torchscript":
        raise UserError("--int8 applies to --format onnx and openvino")
    if args.int8 and not args.calib:
        raise UserError("--int8 needs --calib DATA (a dataset YAML or 'digits'): images to calibrate on")
    if args.calib and not args.int8:
        raise UserError("--calib applies with --int8")
    suffix = {"onnx": ".onnx", "openvino": ".xml"}.get(args.format)
    if suffix and Path(args.out).suffix.lower() != suffix:
        raise UserError(f"--out {args.out}: a {args.format} file is named *{suffix}")


def _export_onnx_or_openvino(model, config, settings, size, path: Path, args) -> None:
    """ONNX (fp32, or quantized by onnxruntime), or ONNX converted to OpenVINO IR (quantized by
    NNCF with --int8), with the anchordet metadata."""
    import tempfile

    from anchordet.export.metadata import export_metadata
    from anchordet.export.onnx import export_onnx

    precision = "int8" if args.int8 else "fp32"
    metadata = export_metadata(model, config, settings.to_metadata(), args.postprocess, precision)
    calibration = None
    if args.int8:
        from anchordet.export.calibration import calibration_inputs

        fixed = None if args.dynamic else (args.batch_size, *size)
        calibration = calibration_inputs(args.calib, settings, args.calib_images, model.size_divisible,
                                         args.postprocess, fixed)
    if args.format == "onnx" and not args.int8:
        with atomic_path(path) as tmp:
            export_onnx(model, tmp, postprocess=args.postprocess, dynamic=args.dynamic, example_size=size,
                        batch_size=args.batch_size, opset=args.opset, metadata=metadata)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=path.parent) as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", postprocess=args.postprocess, dynamic=args.dynamic,
                                example_size=size, batch_size=args.batch_size, opset=args.opset, metadata=metadata)
        if args.format == "onnx":
            from anchordet.export.deploy import quantize_onnx

            quantize_onnx(onnx_path, path, calibration, metadata)
        else:
            from anchordet.export.deploy import export_openvino

            export_openvino(onnx_path, path, metadata, calibration)


def _check_size(model, size: tuple[int, int]) -> None:
    side = model.fixed_size
    if side is not None and tuple(size) != (side, side):
        raise UserError(f"--size {size[0]} {size[1]}: this {type(model).__name__} takes {side} x {side} inputs")
    step = model.size_divisible
    if any(s % step for s in size):
        raise UserError(f"--size {size[0]} {size[1]}: sides must be multiples of {step} for this model")


# --check's tolerance: |exported - eager| <= CHECK_ATOL + CHECK_RTOL * (the output's largest |value|).
# float32 error grows with the magnitude of what is summed, not with each element: at 800 px the
# R50-C4 features reach 112 and eager float32 is itself 8.6e-05 from float64 there while
# onnxruntime is 6.5e-05 from it (benchmarks/onnx_check_error.py, BENCHMARKS.md), so a fixed 1e-4
# failed a faithful export. 1e-5 of the scale is ~10x the float32-vs-float64 error measured
# (7.7e-07 of it); anything the export drifts by (a dropped op, a wrong constant) is far larger.
CHECK_ATOL, CHECK_RTOL = 1e-4, 1e-5


def check_tolerance(scale: float) -> float:
    """The largest difference --check accepts for an output whose largest |value| is ``scale``."""
    return CHECK_ATOL + CHECK_RTOL * scale


def _check(model, path, args, size) -> int:
    """Compare the exported file with eager PyTorch on random images (``forward``, or ``predict``
    with --postprocess); exit 1 when an output differs by more than ``check_tolerance`` of its scale."""
    import numpy as np
    import torch

    images = torch.rand(args.batch_size, 3, *size)
    sizes = torch.tensor([list(size)] * args.batch_size)
    if args.format == "torchscript":
        with torch.no_grad():
            loaded = torch.jit.load(str(path))
            got = list(loaded(images, sizes) if args.postprocess else loaded(images))
    else:
        from anchordet.backends.base import require

        session = require("onnxruntime", "--check").InferenceSession(str(path))
        feed = {"images": images.numpy()}
        if args.postprocess:
            feed["image_sizes"] = sizes.numpy().astype(np.int64)
        got = [torch.from_numpy(v) for v in session.run(None, feed)]
    if args.postprocess:
        expected = _flatten(model.predict(images))
        differences = [(_detections_difference(got, expected), _scale(expected[0]))]  # the boxes, in pixels
    else:
        with torch.no_grad():
            expected = list(model(images))[: len(got)]
        if any(g.shape != e.shape for g, e in zip(got, expected)):
            print(f"check: FAILED, shapes {[tuple(g.shape) for g in got]} vs eager {[tuple(e.shape) for e in expected]}")
            return 1
        differences = [((g.double() - e.double()).abs().max().item() if g.numel() else 0.0, _scale(e))
                       for g, e in zip(got, expected)]
    worst, scale = max(differences, key=lambda d: d[0] / check_tolerance(d[1]))
    ok = all(d <= check_tolerance(s) for d, s in differences)
    print(f"check: largest difference from eager PyTorch {worst:.3g} on values up to {scale:.3g} (tolerance "
          f"{check_tolerance(scale):.3g} = {CHECK_ATOL:g} + {CHECK_RTOL:g} x that) ({'ok' if ok else 'FAILED'})")
    return 0 if ok else 1


def _scale(values) -> float:
    """The largest |value| of an output (0 for an empty one)."""
    return float(values.abs().max()) if values.numel() else 0.0


def _check_backend(model, path, args, size) -> int:
    """Compare the exported file, run through its backend and the library's Predictor path, with
    eager ``predict`` on random images: detections paired by image, label and score. fp32 files
    must match (boxes within 1e-3 px, scores within 1e-4: OpenVINO's kernels round differently
    from PyTorch's); an int8 file is reported, not judged (its AP is what tells: anchordet evaluate)."""
    import torch

    from anchordet.backends import open_exported

    backend = open_exported(path)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch_size, 3, *size, generator=generator)
    got = _flatten(backend.predict(images))
    expected = _flatten(model.predict(images))
    print(f"check: {backend.describe()}: {len(got[0])} detections, eager PyTorch {len(expected[0])}")
    if args.int8:
        _print_int8_differences(got, expected)
        print("check: int8 differs from fp32 by design; measure its AP with anchordet evaluate -w " + str(path))
        return 0
    worst = _detections_difference(got, expected, score_tol=1e-4)
    ok = worst <= 1e-3
    print(f"check: largest box difference from eager PyTorch {worst:.3g} px ({'ok' if ok else 'FAILED'})")
    return 0 if ok else 1


def _print_int8_differences(got, expected) -> None:
    """Per expected detection, the best-overlapping one of the same image and label: IoU and
    score difference (mean and worst), and how many found none."""
    import torch
    from torchvision.ops import box_iou

    ious, score_diffs, missing = [], [], 0
    for box, score, label, image in zip(*expected):
        mine = (got[2] == label) & (got[3] == image)
        if not mine.any():
            missing += 1
            continue
        overlaps = box_iou(box[None], got[0][mine])[0]
        best = int(overlaps.argmax())
        ious.append(float(overlaps[best]))
        score_diffs.append(abs(float(got[1][mine][best] - score)))
    if ious:
        iou, diff = torch.tensor(ious), torch.tensor(score_diffs)
        print(f"check: int8 vs eager fp32: best IoU mean {iou.mean():.3f} (lowest {iou.min():.3f}), score "
              f"difference mean {diff.mean():.3g} (largest {diff.max():.3g}); {missing} of {len(expected[0])} "
              f"eager detections without a same-class partner")
    else:
        print(f"check: int8 vs eager fp32: none of the {len(expected[0])} eager detections has a same-class partner")


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
