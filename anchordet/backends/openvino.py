"""The OpenVINO backend: an IR (``.xml`` + ``.bin``, from ``anchordet export --format openvino``,
fp32 or NNCF int8) or an ``.onnx`` file, compiled for the CPU.

Precision: OpenVINO's CPU plugin computes in bf16 by default on CPUs with AVX512_BF16 / AMX; here
the ``precision`` argument decides it (``INFERENCE_PRECISION_HINT``): "fp32" (the default, equal to
eager within float rounding) or "bf16". An int8 IR runs its quantized convolutions in int8 (VNNI /
AMX) whatever the hint; the hint governs the rest of the graph.
Threads: ``threads`` sets ``INFERENCE_NUM_THREADS`` (None: OpenVINO's default, one stream).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from anchordet.backends.base import ExportedBackend, ExportInfo, require, shape_of
from anchordet.errors import UserError
from anchordet.export import metadata as keys

RT_INFO_SECTION = "anchordet"  # the metadata lives under rt_info["anchordet"][key] in the IR
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def read_ir_metadata(model) -> dict[str, str]:
    """The anchordet metadata of an ``openvino.Model`` read from an IR (its rt_info section)."""
    values = {}
    for key in keys.KEYS:
        if model.has_rt_info([RT_INFO_SECTION, key]):
            values[key] = str(model.get_rt_info([RT_INFO_SECTION, key]).astype(str))
    return values


def write_ir_metadata(model, values: dict[str, str]) -> None:
    for key, value in values.items():
        model.set_rt_info(str(value), [RT_INFO_SECTION, key])


class OpenVinoBackend(ExportedBackend):
    name = "openvino"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int | None = None):
        ov = require("openvino", "running an OpenVINO model")
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no such file: {path}")
        if precision not in _HINTS:
            raise UserError(f"{path}: OpenVINO runs on the CPU in fp32 or bf16, not {precision}")
        if precision == "bf16":
            from anchordet.runtime.precision import cpu_has_native_bf16

            if not cpu_has_native_bf16():
                raise UserError(f"{path}: bf16 needs a CPU with AVX512_BF16 or AMX")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses for unreadable files
            raise UserError(f"{path}: OpenVINO cannot read it ({str(exc).splitlines()[0]})") from None
        metadata = read_ir_metadata(model) if path.suffix.lower() == ".xml" else _onnx_metadata(path)
        info = ExportInfo.parse(path, metadata)
        inputs = {port.get_any_name(): shape_of([d.get_length() if d.is_static else None for d in port.get_partial_shape()])
                  for port in model.inputs}
        self._setup(info, inputs)
        config = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]
        self.precision = precision if info.precision == "fp32" else f"{info.precision}+{precision}"

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self.request.infer(feed)
        return [np.array(result[port]) for port in self.compiled.outputs]


def _onnx_metadata(path: Path) -> dict[str, str]:
    onnx = require("onnx", "reading an .onnx file's metadata")
    model = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in model.metadata_props}
