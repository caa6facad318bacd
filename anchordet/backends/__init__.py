"""Inference backends: the one step of prediction that differs between PyTorch and an exported
file, behind one small interface (``Backend``), so that ``anchordet.Predictor`` (resize, batching,
score threshold, class filter, class-agnostic NMS, rescale, video, tiling, evaluation) is shared.

The step: a batch of resized images in [0, 1] -> per-image ``Detections`` in the pixels of those
resized images. Backends:

- ``torch``: the detector itself (``TorchBackend``);
- ``onnxruntime``: an ``.onnx`` file (``anchordet.backends.onnxruntime``);
- ``openvino``: an OpenVINO IR ``.xml`` (+ ``.bin``) or an ``.onnx`` file compiled by OpenVINO
  (``anchordet.backends.openvino``).

Exported files carry what the Predictor needs in their metadata (``anchordet.export.metadata``):
the eval resize and class names, the model config, whether NMS is inside the graph and with
which settings. A file exported without post-processing (RetinaNet, SSD) runs the library's own
post-processing on its raw outputs, with any thresholds; a file with NMS inside uses it, and
only stricter settings can be applied on top (``ExportedBackend.check_postprocess``).
"""
from __future__ import annotations

from pathlib import Path

from anchordet.backends.base import Backend, TorchBackend
from anchordet.errors import UserError

EXPORTED_SUFFIXES = {".onnx": "onnxruntime", ".xml": "openvino"}
BACKEND_NAMES = ("torch", "onnxruntime", "openvino")


def backend_for_file(path: str | Path, requested: str | None = None) -> str | None:
    """The backend that runs ``path``: None for weights files (PyTorch), else ``requested`` or the
    suffix's own (``.onnx``: onnxruntime, ``.xml``: openvino; OpenVINO also reads ``.onnx``)."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXPORTED_SUFFIXES:
        if requested not in (None, "torch"):
            raise UserError(f"{path}: backend {requested} runs exported files (.onnx, .xml); "
                            f"export the weights first (anchordet export)")
        return None
    if requested in (None, EXPORTED_SUFFIXES[suffix]):
        return EXPORTED_SUFFIXES[suffix]
    if requested == "openvino" and suffix == ".onnx":
        return "openvino"
    raise UserError(f"{path}: backend {requested} cannot run a {suffix} file")


def open_exported(path: str | Path, backend: str | None = None, precision: str = "fp32",
                  threads: int | None = None) -> "Backend":
    """The backend object for an exported file (see ``backend_for_file``)."""
    name = backend_for_file(path, backend)
    if name == "onnxruntime":
        from anchordet.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, precision=precision, threads=threads)
    from anchordet.backends.openvino import OpenVinoBackend

    return OpenVinoBackend(path, precision=precision, threads=threads)


__all__ = ["BACKEND_NAMES", "Backend", "EXPORTED_SUFFIXES", "TorchBackend", "backend_for_file", "open_exported"]
