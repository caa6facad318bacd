"""What an exported file (ONNX ``metadata_props``, OpenVINO IR ``rt_info``) says about itself, so
that ``anchordet.load("model.onnx" | "model.xml")`` returns a Predictor that behaves as the
weights' own: string keys and values, JSON where structured.

- ``anchordet_inference``: the weights' ``InferenceSettings`` (eval resize, class names, ...);
- ``anchordet_model``: the model config (factory and arguments), as in a weights file: the
  library's post-processing of raw outputs is the detector's own, built on the meta device;
- ``anchordet_size_divisible``: the multiple the input sides are padded to;
- ``anchordet_outputs``: "raw" (the network's ``forward``) or "detections" (NMS inside);
- ``anchordet_postprocess``: with "detections", the post-processing settings in the graph;
- ``anchordet_precision``: "fp32" or "int8" (post-training quantized).
"""
from __future__ import annotations

import dataclasses
import json

from torch import nn

INFERENCE = "anchordet_inference"
MODEL = "anchordet_model"
SIZE_DIVISIBLE = "anchordet_size_divisible"
OUTPUTS = "anchordet_outputs"
POSTPROCESS = "anchordet_postprocess"
PRECISION = "anchordet_precision"
KEYS = (INFERENCE, MODEL, SIZE_DIVISIBLE, OUTPUTS, POSTPROCESS, PRECISION)


def export_metadata(detector: nn.Module, model_config, inference: dict[str, str] | None, postprocess: bool,
                    precision: str = "fp32") -> dict[str, str]:
    """The metadata entries of an export of ``detector`` (``model_config``: its ``ModelConfig``;
    ``inference``: ``InferenceSettings.to_metadata()``)."""
    values = {MODEL: json.dumps({"factory": model_config.factory, **model_config.args}),
              SIZE_DIVISIBLE: str(detector.size_divisible),
              OUTPUTS: "detections" if postprocess else "raw", PRECISION: precision, **(inference or {})}
    if postprocess:
        values[POSTPROCESS] = json.dumps(graph_postprocess(detector))
    return values


def graph_postprocess(detector: nn.Module) -> dict:
    """The post-processing settings an export with NMS inside holds (the detector's own)."""
    settings = {"postprocess": dataclasses.asdict(detector.postprocess)}
    if detector.family == "faster_rcnn":  # the proposal stage is in the graph too
        settings["proposals"] = dataclasses.asdict(detector.rpn.test_proposals)
    return settings
