"""TorchScript export by tracing: the network's raw outputs, or with ``postprocess=True`` the
network and its post-processing (``DetectionsModule``: the code ``predict`` runs).

Raw: the traced module takes ``images`` (B, 3, H, W) float in [0, 1] and returns the tuple of
``raw_output_names`` (RetinaNet / SSD: cls_logits, box_deltas, anchors; Faster R-CNN: features,
rpn_objectness, rpn_box_deltas, anchors). With post-processing it takes ``(images,
image_sizes)`` ((B, 2) int64, each image's height and width before padding) and returns
``(boxes, scores, labels, batch_index)``, as the ONNX export. Tracing records the size arithmetic
(feature-map sizes, anchor grids, top-k counts) and the data-dependent selections (masks, NMS),
so other batch sizes and image sizes work (SSD: its square size only). Scripting is not used:
the detectors are plain Python on purpose (not written for TorchScript). Loading needs torchvision
imported (its NMS and RoI ops are registered by ``import torchvision``).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from anchordet.export.onnx import DetectionsModule, RawOutputsModule, default_example_size
from anchordet.files import atomic_write


def trace(detector: nn.Module, example_size: Sequence[int] | None = None, batch_size: int = 1,
          postprocess: bool = False) -> torch.jit.ScriptModule:
    """The traced raw-output (or, with ``postprocess``, detections) module of ``detector`` (put in
    eval mode)."""
    detector = detector.eval()
    height, width = example_size or default_example_size(detector)
    device = next(detector.parameters()).device
    example = (torch.rand(batch_size, 3, int(height), int(width), device=device),)
    if postprocess:
        example += (torch.tensor([[int(height), int(width)]] * batch_size, device=device),)
    module = (DetectionsModule(detector) if postprocess else RawOutputsModule(detector)).eval()
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer notes about constants (anchor sizes) and torch.jit's deprecation notice are expected.
        warnings.simplefilter("ignore")
        return torch.jit.trace(module, example, check_trace=False)


def export_torchscript(detector: nn.Module, path: str | Path, example_size: Sequence[int] | None = None,
                       batch_size: int = 1, postprocess: bool = False) -> Path:
    """Trace ``detector`` and save it (whole or not at all); load with ``torch.jit.load(path)``."""
    traced = trace(detector, example_size, batch_size, postprocess)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return atomic_write(path, lambda f: torch.jit.save(traced, f))
