"""ONNX export: the network's raw outputs, optionally followed by the post-processing with ONNX
``NonMaxSuppression``, so that an onnxruntime session returns final detections.

Inputs: ``images`` (B, 3, H, W) float32 in [0, 1] (the model normalises inside, as ``forward``);
RetinaNet wants H and W multiples of 32 (pad at the right and bottom with 0, as ``ImageBatch``),
SSD exactly its square size. ``dynamic=True`` leaves B, H and W free (SSD: B only).
With post-processing also ``image_sizes`` (B, 2) int64: each image's (height, width) before
padding, the clipping limit (as ``predict`` clips to ``ImageBatch.image_sizes``).

Outputs without post-processing: the tensor fields of ``forward``'s ``DenseOutputs``:
``cls_logits`` (B, A, C), ``box_deltas`` (B, A, 4), ``anchors`` (A, 4).
With post-processing (``DetectionsModule``): ``boxes`` (N, 4) xyxy input pixels, ``scores`` (N,),
``labels`` (N,) int64 0..K-1 and ``batch_index`` (N,) int64, sorted by score, at most
``max_detections`` per image: the detections ``predict`` returns for each image, flattened.

Exporter: torch.onnx's TorchScript-based exporter (``dynamo=False``). Here it is ~30 times faster
than the torch.export-based one (3 s against 110 s for a tiny RetinaNet), keeps shapes dynamic by
tracing size arithmetic, and maps ``torchvision.ops.nms`` onto ONNX ``NonMaxSuppression``
(torchvision registers that translation); the torch.export-based exporter has none for NMS.
"""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection._utils import _topk_min
from torchvision.ops import batched_nms


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
    """Names of the tensor fields of ``detector.forward``'s output type (DenseOutputs)."""
    from anchordet.structures.outputs import DenseOutputs

    hints = typing.get_type_hints(DenseOutputs)
    return [name for name in DenseOutputs._fields if hints[name] is Tensor]


class DetectionsModule(nn.Module):
    """Raw outputs -> final detections in tensor ops whose shapes stay dynamic under tracing.

    Equal to ``DensePostprocess`` (``predict``): the same candidates (top-k then score >
    threshold selects what threshold then top-k does), boxes clipped to each image's size before
    padding (``image_sizes``), class-wise NMS (torchvision's, exported as NonMaxSuppression;
    groups = image * K + class keep images apart) and the best ``max_detections`` per image.
    """

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector
        self.sigmoid = hasattr(detector, "forward_per_level")  # RetinaNet; SSD is softmax

    def forward(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """images (B, 3, H, W) in [0, 1]; image_sizes (B, 2) each image's (height, width) before
        padding. Returns boxes (N, 4), scores (N,), labels (N,), batch_index (N,)."""
        if self.sigmoid:
            boxes, scores, labels = self._sigmoid_candidates(images, image_sizes)
        else:
            boxes, scores, labels = self._softmax_candidates(images, image_sizes)
        return self._select(boxes, scores, labels)

    def _sigmoid_candidates(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per level the top-k (anchor, class) pairs of each image: (B, N, 4), (B, N), (B, N)."""
        detector = self.detector
        cls_per_level, box_per_level, anchors_per_level = detector.forward_per_level(images)
        boxes, scores, labels = [], [], []
        for logits, deltas, anchors in zip(cls_per_level, box_per_level, anchors_per_level):
            num_classes = logits.shape[-1]
            flat = torch.sigmoid(logits.float()).flatten(1)  # (B, A_l * K)
            top_scores, top = flat.topk(_topk_min(flat, detector.postprocess.topk_candidates, 1), dim=1)  # (B, k)
            anchor_index = torch.div(top, num_classes, rounding_mode="floor")
            top_deltas = torch.gather(deltas, 1, anchor_index[..., None].expand(-1, -1, 4))  # (B, k, 4)
            boxes.append(detector.box_coder.decode(top_deltas, anchors[anchor_index]))
            scores.append(top_scores)
            labels.append(top % num_classes)
        return _clip(torch.cat(boxes, 1), image_sizes), torch.cat(scores, 1), torch.cat(labels, 1)

    def _softmax_candidates(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per class the top-k boxes of each image: (B, K * k, 4), (B, K * k), (B, K * k)."""
        detector = self.detector
        out = detector(images)
        probs = torch.softmax(out.cls_logits.float(), dim=-1)[..., :-1].transpose(1, 2)  # (B, K, A): no background
        boxes_all = _clip(detector.box_coder.decode(out.box_deltas, out.anchors[None]), image_sizes)  # (B, A, 4)
        top_scores, top = probs.topk(_topk_min(probs, detector.postprocess.topk_candidates, 2), dim=2)  # (B, K, k)
        batch, num_classes, k = top.shape
        boxes = torch.gather(boxes_all, 1, top.reshape(batch, -1, 1).expand(-1, -1, 4))  # (B, K * k, 4)
        labels = torch.arange(num_classes, device=top.device)[None, :, None].expand_as(top)
        return boxes, top_scores.reshape(batch, -1), labels.reshape(batch, -1)

    def _select(self, boxes: Tensor, scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(B, N, ...) candidates -> flat detections: score > threshold, NMS, best per image."""
        post = self.detector.postprocess
        num_classes = self.detector.num_classes
        images = torch.arange(boxes.shape[0], device=boxes.device)  # (B,): traced from the shape, so dynamic
        batch_index = images[:, None].expand_as(labels)  # (B, N)
        keep = scores.flatten() > post.score_thresh
        boxes, scores = boxes.reshape(-1, 4)[keep], scores.flatten()[keep]
        labels, batch_index = labels.flatten()[keep], batch_index.flatten()[keep]
        kept = batched_nms(boxes, scores, batch_index * num_classes + labels, post.nms_thresh)  # by score
        batch_index = batch_index[kept]
        # Rank of each detection within its image (kept is sorted by score): keep the best ones.
        same_image = (batch_index[:, None] == images[None]).long()  # (M, B)
        rank = (same_image.cumsum(0) * same_image).sum(1) - 1
        best = kept[rank < post.max_detections]
        return boxes[best], scores[best], labels[best], batch_index[rank < post.max_detections]


def _clip(boxes: Tensor, image_sizes: Tensor) -> Tensor:
    """Clip (B, N, 4) xyxy boxes to each image's (height, width) of ``image_sizes`` (B, 2): the
    sizes are a graph input, so each image is clipped to its own size (``clip_boxes`` takes
    Python ints, which tracing would freeze)."""
    limits = image_sizes.to(boxes.dtype)[:, None, :]  # (B, 1, 2): height, width
    zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
    x = torch.minimum(torch.maximum(boxes[..., 0::2], zero), limits[..., 1:2])  # (B, N, 2)
    y = torch.minimum(torch.maximum(boxes[..., 1::2], zero), limits[..., 0:1])
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def default_example_size(detector: nn.Module) -> tuple[int, int]:
    """The traced example's (H, W): the SSD's square size, else 512 x 512 (any multiple of 32)."""
    side = getattr(detector, "image_size", None)
    return (int(side), int(side)) if side else (512, 512)


def export_onnx(detector: nn.Module, path: str | Path, *, postprocess: bool = False, dynamic: bool = False,
                example_size: Sequence[int] | None = None, batch_size: int = 1,
                opset: int = DEFAULT_OPSET) -> Path:
    """Write ``detector`` (eval mode) as ONNX.

    Args:
        postprocess: append the post-processing (RetinaNet and SSD) so the outputs are detections.
        dynamic: batch, height and width free; otherwise fixed to the example's shape.
        example_size: (H, W) of the traced example (``default_example_size``).
        batch_size: B of the traced example.
    Returns:
        the written path.
    """
    path = Path(path)
    detector = detector.eval()
    if postprocess and not hasattr(detector, "postprocess"):
        raise ValueError(f"{type(detector).__name__}: post-processing export covers RetinaNet and SSD only")
    # The wrapper must be in eval mode too: the exporter restores the wrapper's mode afterwards,
    # recursively, which would otherwise leave the detector's BatchNorm layers in training mode.
    module = (DetectionsModule(detector) if postprocess else RawOutputsModule(detector)).eval()
    names = ["boxes", "scores", "labels", "batch_index"] if postprocess else raw_output_names(detector)
    height, width = example_size or default_example_size(detector)
    device = next(detector.parameters()).device
    example = (torch.rand(batch_size, 3, int(height), int(width), device=device),)
    inputs = ["images"]
    if postprocess:
        example += (torch.tensor([[int(height), int(width)]] * batch_size, device=device),)
        inputs.append("image_sizes")
    axes = None
    if dynamic:
        square = hasattr(detector, "image_size")  # SSD: the size is part of the model
        axes = {"images": {0: "batch"} if square else {0: "batch", 2: "height", 3: "width"}}
        if postprocess:
            axes["image_sizes"] = {0: "batch"}
        for name in names:
            axes[name] = ({0: "num_detections"} if postprocess else
                          {0: "num_anchors"} if name == "anchors" else {0: "batch", 1: "num_anchors"})
    path.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about constants (anchor sizes, thresholds) and the exporter about its
        # own deprecation; both are expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), dynamo=False, input_names=inputs, output_names=names,
                          dynamic_axes=axes, opset_version=opset)
    return path
