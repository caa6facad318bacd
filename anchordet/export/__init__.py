"""Export to ONNX (optionally with post-processing) and TorchScript; see docs/export.md."""
from anchordet.export.onnx import DetectionsModule, RawOutputsModule, export_onnx, raw_output_names
from anchordet.export.torchscript import export_torchscript, trace

__all__ = ["DetectionsModule", "RawOutputsModule", "export_onnx", "export_torchscript", "raw_output_names", "trace"]
