"""How far an ONNX export's outputs are from eager PyTorch, against how far eager float32 itself is
from float64: does the export drift, or does `anchordet export --check`'s tolerance not fit?

For one preset (random weights, seeded; score threshold 0 so that every detection slot is
filled), at the example size: the raw outputs (``forward``) and the detections (``--postprocess``)
of onnxruntime, eager float32 and eager float64 (the model and the images in double). Printed per
output: the largest absolute difference ONNX - fp32 and fp32 - fp64, the largest magnitude, and those
differences relative to that magnitude (what ``anchordet export --check`` judges by).

    OMP_NUM_THREADS=1 python benchmarks/onnx_check_error.py faster_rcnn_r50_c4_coco 800
"""
from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def main(preset: str = "faster_rcnn_r50_c4_coco", side: int = 800) -> None:
    import onnxruntime

    from anchordet.config.presets import PRESETS
    from anchordet.config.schema import ModelConfig
    from anchordet.export.onnx import export_onnx

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = PRESETS[preset].model
    model = ModelConfig(config.factory, {**config.args, "backbone_weights": None}).build().eval()
    model.postprocess = dataclasses.replace(model.postprocess, score_thresh=0.0)
    images = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    sizes = torch.tensor([[side, side]])
    for postprocess in (False, True):
        with torch.no_grad():
            if postprocess:
                fp32 = [t.detach() for t in model.flat_detections(images, sizes)]
                fp64 = [t.detach() for t in model.double().flat_detections(images.double(), sizes)]
            else:
                fp32 = [t.detach() for t in model(images) if t is not None]
                fp64 = [t.detach() for t in model.double()(images.double())]
        model.float()
        with tempfile.TemporaryDirectory() as folder:
            path = export_onnx(model, Path(folder) / "model.onnx", postprocess=postprocess, example_size=(side, side))
            session = onnxruntime.InferenceSession(str(path))
        feed = {"images": images.numpy()}
        if postprocess:
            feed["image_sizes"] = sizes.numpy()
        got = [torch.from_numpy(v) for v in session.run(None, feed)]
        names = [o.name for o in session.get_outputs()]
        print(f"{preset} at {side} px, {'detections' if postprocess else 'raw outputs'}:")
        for name, onnx, eager, double in zip(names, got, fp32, fp64):
            if not onnx.is_floating_point() or onnx.shape != eager.shape or eager.shape != double.shape:
                print(f"  {name}: shapes onnx {tuple(onnx.shape)} fp32 {tuple(eager.shape)} fp64 {tuple(double.shape)}"
                      f"{'' if onnx.is_floating_point() else ' (integer: equal ' + str(torch.equal(onnx, eager)) + ')'}")
                continue
            scale = float(double.abs().max().clamp(min=1e-12))
            onnx_fp32 = (onnx.double() - eager.double()).abs()
            fp32_fp64 = (eager.double() - double).abs()
            onnx_fp64 = (onnx.double() - double).abs()
            print(f"  {name}: max |value| {double.abs().max():.4g}; |onnx - fp32| {onnx_fp32.max():.3g} "
                  f"(relative {(onnx_fp32 / scale).max():.3g}); |fp32 - fp64| {fp32_fp64.max():.3g} "
                  f"(relative {(fp32_fp64 / scale).max():.3g}); |onnx - fp64| {onnx_fp64.max():.3g}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "faster_rcnn_r50_c4_coco", int(sys.argv[2]) if len(sys.argv) > 2 else 800)
