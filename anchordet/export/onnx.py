"""ONNX export: the network's raw outputs, optionally followed by the post-processing (NMS as
ONNX ``NonMaxSuppression``), so that an onnxruntime session returns final detections.

Inputs: ``images`` (B, 3, H, W) float32 in [0, 1] (the model normalises inside, as ``forward``);
RetinaNet wants H and W multiples of 32, Faster R-CNN of 16 (pad at the right and bottom with 0,
as ``ImageBatch``), SSD exactly its square size. ``dynamic=True`` leaves B, H and W free (SSD: B
only). With post-processing also ``image_sizes`` (B, 2) int64: each image's (height, width)
before padding, the clipping limit (as ``predict`` clips to ``ImageBatch.image_sizes``).

Outputs without post-processing: the tensor fields of the type ``forward`` returns
(``raw_output_names``): RetinaNet / SSD ``cls_logits`` (B, A, C), ``box_deltas`` (B, A, 4),
``anchors`` (A, 4); Faster R-CNN ``features`` (B, C, H/16, W/16), ``rpn_objectness`` (B, A),
``rpn_box_deltas`` (B, A, 4), ``anchors`` (A, 4).
With post-processing (``DetectionsModule``, i.e. the detector's ``flat_detections``): ``boxes``
(N, 4) xyxy input pixels, ``scores`` (N,), ``labels`` (N,) int64 0..K-1 and ``batch_index`` (N,)
int64, sorted by score, at most ``max_detections`` per image: the detections ``predict`` returns
for each image, flattened. For Faster R-CNN that graph holds both stages: proposals (top-k,
decode, clip, min size, NMS per image, the best per image), RoI pooling (ONNX ``MaxRoiPool`` /
``RoiAlign``), the RoI head and the per-class post-processing.

Exporter: torch.onnx's TorchScript-based exporter (``dynamo=False``). Here it is ~30 times faster
than the torch.export-based one (3 s against 110 s for a tiny RetinaNet), keeps shapes dynamic by
tracing size arithmetic, and maps ``torchvision.ops.nms`` / ``roi_pool`` / ``roi_align`` onto
ONNX operators (torchvision registers those translations); the torch.export-based exporter has
none for NMS.
"""
from __future__ import annotations

import io
import typing
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from anchordet.errors import UserError
from anchordet.files import atomic_write_bytes
from anchordet.structures.outputs import FlatDetections


DEFAULT_OPSET = 17


class RawOutputsModule(nn.Module):
    """``detector.forward`` with its tensor outputs as a tuple (what exporters can name)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        outputs = self.detector(images)
        return tuple(getattr(outputs, name) for name in raw_output_names(self.detector))


def raw_output_names(detector: nn.Module) -> list[str]:
    """Names of the tensor fields of the type ``detector.forward`` returns, in order: for RetinaNet
    and SSD ``DenseOutputs`` (cls_logits, box_deltas, anchors), for Faster R-CNN
    ``FasterRCNNOutputs`` (features, rpn_objectness, rpn_box_deltas, anchors)."""
    output_type = typing.get_type_hints(type(detector).forward)["return"]
    hints = typing.get_type_hints(output_type)
    return [name for name in output_type._fields if hints[name] is Tensor]


DETECTION_NAMES = list(FlatDetections._fields)  # boxes, scores, labels, batch_index


class DetectionsModule(nn.Module):
    """``detector.flat_detections`` as a module: the network and its post-processing, the very
    code ``predict`` runs (``predict`` = pad + ``flat_detections`` + split per image)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """images (B, 3, H, W) in [0, 1]; image_sizes (B, 2) each image's (height, width) before
        padding. Returns boxes (N, 4), scores (N,), labels (N,), batch_index (N,)."""
        return tuple(self.detector.flat_detections(images, image_sizes))


# Dynamic axes of the raw outputs that are not (batch, anchors, ...).
_RAW_AXES = {"anchors": {0: "num_anchors"}, "features": {0: "batch", 2: "feature_height", 3: "feature_width"}}


def output_axes(names: Sequence[str], postprocess: bool) -> dict[str, dict[int, str]]:
    """The free axes of each output of a dynamic export."""
    if postprocess:
        return {name: {0: "num_detections"} for name in names}
    return {name: _RAW_AXES.get(name, {0: "batch", 1: "num_anchors"}) for name in names}


def default_example_size(detector: nn.Module) -> tuple[int, int]:
    """The traced example's (H, W): the SSD's square size, else 512 x 512 (any multiple of 32)."""
    side = detector.fixed_size
    return (side, side) if side is not None else (512, 512)


def export_onnx(detector: nn.Module, path: str | Path, *, postprocess: bool = False, dynamic: bool = False,
                example_size: Sequence[int] | None = None, batch_size: int = 1,
                opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None) -> Path:
    """Write ``detector`` (eval mode) as ONNX.

    Args:
        postprocess: append the post-processing (``DetectionsModule``) so the outputs are detections.
        dynamic: batch, height and width free; otherwise fixed to the example's shape.
        example_size: (H, W) of the traced example (``default_example_size``).
        batch_size: B of the traced example.
        metadata: written into the file's ``metadata_props`` (``anchordet export`` puts the
            weights' ``anchordet_inference`` there: the eval resize and class names), besides
            ``anchordet_size_divisible``, the multiple the input sides are padded to.
    Returns:
        the written path (written whole or not at all).
    """
    path = Path(path)
    _check_opset(detector, opset)
    detector = detector.eval()
    # The wrapper must be in eval mode too: the exporter restores the wrapper's mode afterwards,
    # recursively, which would otherwise leave the detector's BatchNorm layers in training mode.
    module = (DetectionsModule(detector) if postprocess else RawOutputsModule(detector)).eval()
    names = DETECTION_NAMES if postprocess else raw_output_names(detector)
    height, width = example_size or default_example_size(detector)
    device = next(detector.parameters()).device
    example = (torch.rand(batch_size, 3, int(height), int(width), device=device),)
    inputs = ["images"]
    if postprocess:
        example += (torch.tensor([[int(height), int(width)]] * batch_size, device=device),)
        inputs.append("image_sizes")
    axes = None
    if dynamic:
        square = detector.fixed_size is not None  # SSD: the size is part of the model
        axes = {"images": {0: "batch"} if square else {0: "batch", 2: "height", 3: "width"}}
        if postprocess:
            axes["image_sizes"] = {0: "batch"}
        axes.update(output_axes(names, postprocess))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about constants (anchor sizes, thresholds) and the exporter about its
        # own deprecation; both are expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buffer, dynamo=False, input_names=inputs, output_names=names,
                          dynamic_axes=axes, opset_version=opset)
    props = {"anchordet_size_divisible": str(detector.size_divisible), **(metadata or {})}
    return atomic_write_bytes(path, _with_metadata(buffer.getvalue(), props))


def _check_opset(detector: nn.Module, opset: int) -> None:
    """RoIAlign with ``aligned=True`` has an ONNX form from opset 16 on (``half_pixel``); below it
    torchvision's translation would silently drop the half-pixel shift."""
    from anchordet.ops.roi_pool import RoIPooler

    # A RoIPooler is a plain configured object (no parameters), held as an attribute of a module.
    poolers = [value for module in detector.modules() for value in vars(module).values() if isinstance(value, RoIPooler)]
    aligned = any(pooler.kind == "align" and pooler.aligned for pooler in poolers)
    if aligned and opset < 16:
        raise UserError(f"opset {opset}: this model's RoIAlign (aligned=True) needs ONNX opset 16 or above")


def _with_metadata(model_bytes: bytes, props: dict[str, str]) -> bytes:
    """The serialized ONNX model with ``props`` added to its ``metadata_props``."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return model.SerializeToString()
