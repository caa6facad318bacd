"""TorchScript export of the network's raw outputs (``forward``) by tracing.

The traced module takes ``images`` (B, 3, H, W) float in [0, 1] and returns the tuple
``(cls_logits, box_deltas, anchors)`` (``raw_output_names``). Tracing records the size
arithmetic (feature-map sizes, anchor grids), so other batch sizes and image sizes work
(SSD: its square size only). Scripting is not used: the detectors are plain Python on purpose
(DESIGN.md, "not copied": TorchScript-first coding). Post-processing is not included: use
``model.predict`` in Python or the ONNX export with ``postprocess=True``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from anchordet.export.onnx import RawOutputsModule, default_example_size


def trace(detector: nn.Module, example_size: Sequence[int] | None = None, batch_size: int = 1) -> torch.jit.ScriptModule:
    """The traced raw-output module of ``detector`` (put in eval mode)."""
    detector = detector.eval()
    height, width = example_size or default_example_size(detector)
    device = next(detector.parameters()).device
    example = torch.rand(batch_size, 3, int(height), int(width), device=device)
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer notes about constants (anchor sizes) and torch.jit's deprecation notice are expected.
        warnings.simplefilter("ignore")
        return torch.jit.trace(RawOutputsModule(detector).eval(), (example,), check_trace=False)


def export_torchscript(detector: nn.Module, path: str | Path, example_size: Sequence[int] | None = None,
                       batch_size: int = 1) -> Path:
    """Trace ``detector`` and save it; load with ``torch.jit.load(path)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    traced = trace(detector, example_size, batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced.save(str(path))
    return path
