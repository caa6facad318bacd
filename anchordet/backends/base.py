"""The ``Backend`` interface, the PyTorch backend, and what every exported-file backend shares:
reading the file's metadata, fitting a batch to the graph's static input shape, and the library's
post-processing of raw outputs."""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from anchordet.errors import UserError
from anchordet.export import metadata as keys
from anchordet.structures.image_batch import ImageBatch
from anchordet.structures.outputs import DenseOutputs, FlatDetections
from anchordet.structures.targets import Detections

# The extra that installs each optional runtime (pyproject.toml).
EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino", "nncf": "openvino", "onnx": "onnx"}


def require(module: str, purpose: str):
    """``import module``, or one UserError line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module.split(".")[0], module)
        raise UserError(f"{purpose} needs the {module.split('.')[0]} package: "
                        f"pip install 'anchordet[{extra}]'") from None


class Backend:
    """Runs a detector's network (and post-processing) on a batch.

    Attributes:
        name: "torch", "onnxruntime" or "openvino".
        precision: what runs ("fp32", "bf16", "fp16", "int8", possibly "int8+bf16" for OpenVINO).
        num_classes: K.
        size_divisible: input sides are padded to multiples of this.
        postprocess: the default post-processing settings (a ``DensePostprocess`` or
            ``RoIPostprocess``); a call may pass a modified copy.
        adjustable: False where NMS is inside an exported graph (then only stricter settings can
            be applied on top: ``check_postprocess``).
    """

    name = "backend"
    precision = "fp32"
    num_classes: int
    size_divisible: int = 1
    postprocess: Any = None
    adjustable = True
    device = torch.device("cpu")

    def predict(self, images: "Tensor | Sequence[Tensor] | ImageBatch", postprocess: Any = None) -> list[Detections]:
        """images: (B, 3, H, W) or B (3, H_i, W_i) float tensors in [0, 1] (already resized), or an
        ``ImageBatch``. Returns one ``Detections`` per image in that image's pixels (the same
        contract as a detector's ``predict``)."""
        raise NotImplementedError

    def check_postprocess(self, postprocess: Any) -> None:
        """Raise a UserError if this backend cannot apply ``postprocess`` (fixed graphs)."""

    def describe(self) -> str:
        return f"{self.name} {self.precision}"


class TorchBackend(Backend):
    """The detector itself (eager PyTorch, with whatever ``accelerate_for_inference`` set up)."""

    name = "torch"

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", precision: str = "fp32"):
        self.model = model.eval()
        self.device = torch.device(device)
        self.precision = precision
        self.num_classes = int(model.num_classes)
        self.size_divisible = int(model.size_divisible)
        self.postprocess = model.postprocess

    def predict(self, images, postprocess=None) -> list[Detections]:
        if isinstance(images, (list, tuple)):
            images = [image.to(self.device) for image in images]
        elif isinstance(images, Tensor):
            images = images.to(self.device)
        detections = self.model.predict(images, postprocess) if postprocess is not None else self.model.predict(images)
        return [d.to("cpu") for d in detections]


@dataclasses.dataclass(frozen=True)
class ExportInfo:
    """An exported file's metadata, parsed and checked (``anchordet.export.metadata``)."""

    path: str
    settings: Any  # InferenceSettings
    model_config: Any  # ModelConfig
    outputs: str  # "raw" or "detections"
    graph_postprocess: dict | None
    precision: str
    size_divisible: int

    @staticmethod
    def parse(path: str | Path, metadata: Mapping[str, str]) -> "ExportInfo":
        from anchordet.config.inference import InferenceSettings
        from anchordet.config.metadata import parse_json_field
        from anchordet.config.schema import ModelConfig, model_values

        path = str(path)
        if keys.MODEL not in metadata:
            raise UserError(f"{path}: no anchordet metadata (anchordet_model): not written by anchordet export "
                            f"(re-export it with this version)")
        factory, args = model_values(parse_json_field(metadata[keys.MODEL], path, keys.MODEL), path)
        config = ModelConfig(factory, args)
        settings = InferenceSettings.from_metadata(metadata, path, config.num_classes)
        outputs = metadata.get(keys.OUTPUTS, "raw")
        if outputs not in ("raw", "detections"):
            raise UserError(f"{path}: {keys.OUTPUTS} {outputs!r} is not raw or detections")
        post = parse_json_field(metadata[keys.POSTPROCESS], path, keys.POSTPROCESS) if outputs == "detections" else None
        try:
            divisible = int(metadata.get(keys.SIZE_DIVISIBLE, "1"))
        except ValueError:
            raise UserError(f"{path}: {keys.SIZE_DIVISIBLE} {metadata[keys.SIZE_DIVISIBLE]!r} is not an integer") from None
        return ExportInfo(path, settings, config, outputs, post, metadata.get(keys.PRECISION, "fp32"), max(1, divisible))


def meta_detector(config) -> nn.Module:
    """The detector of ``config`` on the meta device (no memory, no weights): its post-processing,
    box coder, anchor generator and shapes, for the raw outputs of an exported file."""
    build = type(config)(config.factory, {k: v for k, v in config.args.items() if k != "backbone_weights"})
    with torch.device("meta"):
        return build.build().eval()


class ExportedBackend(Backend):
    """What the onnxruntime and OpenVINO backends share. Subclasses open the file, then call
    ``_setup(info, input_shapes)`` and implement ``_infer(feed) -> list of output arrays`` (in the
    order of ``output_names``)."""

    output_names: list[str]

    def _setup(self, info: ExportInfo, input_shapes: dict[str, list[int | None]]) -> None:
        """``input_shapes``: each graph input's dims, None where free."""
        self.info, self.source = info, info.path
        self.detector = meta_detector(info.model_config)
        self.num_classes = int(self.detector.num_classes)
        self.size_divisible = info.size_divisible
        self.file_precision = info.precision
        self.image_shape = input_shapes["images"]
        if info.outputs == "raw":
            from anchordet.detectors.base import DenseDetector

            if not isinstance(self.detector, DenseDetector):
                raise UserError(f"{info.path}: this {type(self.detector).__name__} file holds the network's first stage "
                                f"only (exported without --postprocess); export it with --postprocess to predict")
            self.postprocess = self.detector.postprocess
            self.adjustable = True
        else:
            post_type = type(self.detector.postprocess)
            try:
                self.postprocess = post_type(**info.graph_postprocess["postprocess"])
            except (TypeError, KeyError) as exc:
                raise UserError(f"{info.path}: {keys.POSTPROCESS} does not describe {post_type.__name__} ({exc})") from None
            self.adjustable = False
        self._level_counts: dict[tuple[int, int], list[int]] = {}

    # ------------------------------------------------------------------------------ running
    def predict(self, images, postprocess=None) -> list[Detections]:
        batch = ImageBatch.from_images(images, self.size_divisible)
        tensor = self._fit_size(batch)
        fixed_batch = self.image_shape[0]
        step = fixed_batch or len(batch)
        out: list[Detections] = []
        for start in range(0, len(batch), step):
            chunk = tensor[start:start + step]
            sizes = batch.image_sizes[start:start + step]
            count = len(sizes)
            if fixed_batch and count < fixed_batch:  # a static batch: fill with blank images, dropped after
                chunk = torch.cat([chunk, chunk.new_zeros((fixed_batch - count, *chunk.shape[1:]))])
                sizes = sizes + [tuple(chunk.shape[-2:])] * (fixed_batch - count)
            out += self._detect_chunk(chunk, sizes, postprocess)[:count]
        return out

    def _detect_chunk(self, images: Tensor, sizes: list[tuple[int, int]], postprocess) -> list[Detections]:
        """images (b, 3, H, W) fitted to the graph; sizes b (height, width) before padding."""
        feed = {"images": np.ascontiguousarray(images.numpy(), dtype=np.float32)}
        if self.info.outputs == "raw":
            arrays = dict(zip(self.output_names, self._infer(feed)))
            outputs = DenseOutputs(torch.from_numpy(arrays["cls_logits"]), torch.from_numpy(arrays["box_deltas"]),
                                   torch.from_numpy(arrays["anchors"]), self._anchors_per_level(tuple(images.shape[-2:])))
            post = postprocess or self.postprocess
            flat = post(outputs, sizes, self.detector.box_coder, self.detector.score_kind)
            return flat.per_image(len(sizes))
        feed["image_sizes"] = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        arrays = dict(zip(self.output_names, self._infer(feed)))
        flat = FlatDetections(*(torch.from_numpy(np.asarray(arrays[name])) for name in FlatDetections._fields))
        detections = flat.per_image(len(sizes))
        if postprocess is not None:
            self.check_postprocess(postprocess)
            if postprocess.score_thresh > self.postprocess.score_thresh:
                detections = [d.select(d.scores > postprocess.score_thresh) for d in detections]
        return detections

    def _anchors_per_level(self, padded: tuple[int, int]) -> list[int]:
        """A_l of each level for this input size (RetinaNet's per-level top-k needs them): feature
        sizes from a shape-only forward of the meta detector, anchors as its ``forward`` makes them."""
        if padded not in self._level_counts:
            from anchordet.ops.meta import feature_map_sizes

            sizes = feature_map_sizes(self.detector.feature_modules(), padded)
            self._level_counts[padded] = [len(a) for a in self.detector.anchors_for(sizes, padded, torch.device("cpu"))]
        return self._level_counts[padded]

    def _fit_size(self, batch: ImageBatch) -> Tensor:
        """The batch padded to the graph's static height and width, if it has them."""
        tensor = batch.tensor
        fixed_h, fixed_w = self.image_shape[2], self.image_shape[3]
        if fixed_h is None and fixed_w is None:
            return tensor
        height, width = batch.padded_size
        want_h, want_w = fixed_h or height, fixed_w or width
        if height > want_h or width > want_w:
            raise UserError(f"{self.source}: takes {want_h} x {want_w} inputs (exported without --dynamic); "
                            f"an image resized to {height} x {width} does not fit")
        padded = tensor.new_zeros((tensor.shape[0], 3, want_h, want_w))
        padded[:, :, :height, :width] = tensor
        return padded

    def check_postprocess(self, postprocess) -> None:
        """A graph with NMS inside: its NMS IoU and score threshold are fixed; a higher score
        threshold, a class filter and a lower cap are applied on top, nothing else."""
        if self.adjustable or postprocess is None:
            return
        baked = self.postprocess
        if postprocess.nms_thresh != baked.nms_thresh:
            raise UserError(f"{self.source}: NMS is inside this exported graph (IoU {baked.nms_thresh:g}); "
                            f"nms_thresh {postprocess.nms_thresh:g} needs a file exported without --postprocess")
        if postprocess.score_thresh < baked.score_thresh:
            raise UserError(f"{self.source}: this exported graph keeps scores above {baked.score_thresh:g}; "
                            f"score_thresh {postprocess.score_thresh:g} needs a file exported without --postprocess")

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} {self.precision} ({'NMS in the graph' if not self.adjustable else 'raw outputs'})"


def shape_of(dims: Sequence[Any]) -> list[int | None]:
    """Dims as ints, None where free (a name, -1, 0 or a dynamic dimension)."""
    out: list[int | None] = []
    for dim in dims:
        try:
            value = int(dim)
        except (TypeError, ValueError):
            value = None
        out.append(value if value and value > 0 else None)
    return out

