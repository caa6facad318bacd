"""The onnxruntime backend: an ``.onnx`` file written by ``anchordet export`` (fp32, or int8 QDQ
from ``--int8``) in an ``InferenceSession`` on the CPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from anchordet.backends.base import ExportedBackend, ExportInfo, require, shape_of
from anchordet.errors import UserError


class OnnxRuntimeBackend(ExportedBackend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int | None = None):
        ort = require("onnxruntime", "running an .onnx file")
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no such file: {path}")
        if precision not in ("fp32", "auto"):
            raise UserError(f"{path}: onnxruntime runs the file in its own precision ({precision} applies to the "
                            f"torch and openvino backends; export with --int8 for int8)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # no per-node warnings on stderr
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise UserError(f"{path}: onnxruntime cannot open it ({str(exc).splitlines()[0]})") from None
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        info = ExportInfo.parse(path, metadata)
        self._setup(info, {i.name: shape_of(i.shape) for i in self.session.get_inputs()})
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.precision = info.precision

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, feed)
