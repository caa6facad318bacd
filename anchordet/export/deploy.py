"""Deployment exports on top of the ONNX export (``export.onnx``): OpenVINO IR and post-training
INT8 quantization, each with the anchordet metadata (``export.metadata``) that
``anchordet.load`` reads.

- ``export_openvino``: ONNX -> ``openvino.convert_model`` -> (optionally ``nncf.quantize``: INT8
  post-training quantization, NNCF's default MinMax ranges with fast bias correction) ->
  ``openvino.save_model`` (.xml + .bin, fp32 weights, no fp16 compression).
- ``quantize_onnx``: onnxruntime's static quantization, QDQ format, int8 weights per output
  channel, uint8 activations (the U8S8 kernels of x86 VNNI / AMX), MinMax calibration. Only
  convolutions are quantized: the post-processing (decode, NMS) and the tiny matmuls of a head stay
  float.

Both calibrate on graph feeds (``export.calibration.calibration_inputs``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from anchordet.backends.base import require
from anchordet.errors import UserError


def export_openvino(onnx_path: str | Path, xml_path: str | Path, metadata: dict[str, str],
                    calibration: Sequence[dict[str, np.ndarray]] | None = None) -> Path:
    """Convert an anchordet ONNX file to an OpenVINO IR at ``xml_path`` (and its .bin), INT8
    quantized with NNCF on ``calibration`` feeds when given. Both files are written whole or not
    at all (the .bin first, then the .xml that names the model)."""
    ov = require("openvino", "--format openvino")
    from anchordet.backends.openvino import write_ir_metadata

    model = ov.convert_model(str(onnx_path))
    if calibration:
        nncf = require("nncf", "--int8 with --format openvino")
        model = nncf.quantize(model, nncf.Dataset(list(calibration)), subset_size=len(calibration),
                              fast_bias_correction=True)
    write_ir_metadata(model, metadata)
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=xml_path.parent))
    try:
        staged = staging / xml_path.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(staged, xml_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return xml_path


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantizer logs advice on the root logger (pre-processing, bias initializers)
    for every run; the export's own lines say what happened."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_onnx(onnx_path: str | Path, out_path: str | Path, calibration: Sequence[dict[str, np.ndarray]],
                  metadata: dict[str, str]) -> Path:
    """``onnx_path`` quantized to INT8 (QDQ) into ``out_path`` (see the module docstring), with
    ``metadata`` in its ``metadata_props``."""
    require("onnxruntime", "--int8 with --format onnx")
    onnx = require("onnx", "--int8 with --format onnx")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            return next(self.items, None)

    if not calibration:
        raise UserError("--int8 needs calibration images (--calib DATA.yaml)")
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=out_path.parent) as tmp, _quiet_root_logger():
        staged = Path(tmp) / "model.onnx"
        quantize_static(str(onnx_path), str(staged), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv"], per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"CalibTensorRangeSymmetric": False})
        model = onnx.load(str(staged))
        del model.metadata_props[:]
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        from anchordet.files import atomic_write_bytes

        return atomic_write_bytes(out_path, model.SerializeToString())
