"""The detector contract: what every detector provides, and what its callers may ask of it.

Callers (the trainer, evaluation, prediction, export, benchmark, precision, fine-tuning, the
torchvision interop) ask the detector; they never guess with ``getattr`` defaults or dispatch on
a class name. Every detector is a ``Detector``:

* **Input shape**: ``size_divisible`` (images are padded to a multiple of it: the largest stride
  its network needs) and ``fixed_size`` (the one square side the network takes, SSD's 300 / 512;
  None when any size works). ``input_size(image_size)`` is the padded (H, W) one image becomes;
  ``image_batch(images)`` pads a batch that way and refuses a wrong size for a fixed-size model.
  The data pipeline resizes; the collate pads with ``size_divisible`` (1 for a fixed size, so a
  300 px image stays 300 px).
* **Network parts**: ``network_parts``, the dotted paths of the convolution stacks between the
  input and the data-dependent steps (anchors, proposals, RoI pooling, losses, post-processing);
  precision (``runtime.precision``) and the traced CPU path (``export.optimize``) act on them.
* **Class outputs**: ``class_layouts()``, each class-specific tensor and its row layout
  (``ClassLayout``): what fine-tuning keeps per class and the torchvision interop selects.
* **Methods**: ``forward(images) -> raw outputs`` (one type in train and eval: what export
  traces), ``loss(images, targets) -> dict[str, Tensor]``, ``predict(images, postprocess=None)
  -> list[Detections]`` (under ``torch.inference_mode``), ``flat_detections(images, image_sizes,
  postprocess=None) -> FlatDetections`` (the traceable core of ``predict``) and
  ``training_anchors(image_size) -> TrainingAnchors``; ``postprocess`` holds the thresholds
  ``predict`` uses (score, NMS, detections per image).
* **family**: "retinanet", "ssd" or "faster_rcnn": the key of measured per-family choices
  (``runtime.acceleration``: where channels_last is faster).

``DenseDetector`` is the shared skeleton of the single-stage detectors (RetinaNet, SSD): the
network gives per-level class logits and box deltas in the anchors' order, training builds dense
targets over all anchors with one normaliser (positives, the DDP mean), inference decodes with
``DensePostprocess``. A subclass gives its features, its anchors and its loss terms.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import Tensor, nn

from anchordet.anchors.training import TrainingAnchors
from anchordet.distributed import reduce_mean
from anchordet.losses.dense_targets import DenseTargetBuilder, DenseTargets
from anchordet.ops.meta import feature_map_sizes
from anchordet.postprocess.dense import DensePostprocess
from anchordet.structures.image_batch import ImageBatch, normalize, padded_size
from anchordet.structures.outputs import DenseOutputs, FlatDetections
from anchordet.structures.targets import Detections, Targets, validate_targets


@dataclass(frozen=True)
class ClassLayout:
    """Rows of a class-specific tensor: ``groups`` blocks (anchors per location) of (K + extra)
    classes, ``per`` rows each (4 for per-class boxes). Row of class k in group g, item j:
    ``(g * (K + extra) + k) * per + j``."""

    groups: int
    extra: int  # 1: a background class after the K classes
    per: int = 1

    def rows(self, num_classes: int) -> int:
        return self.groups * (num_classes + self.extra) * self.per

    def index(self, num_classes: int, klass: int) -> list[int]:
        """The rows of class ``klass`` (``num_classes`` is the background when extra is 1)."""
        return [(g * (num_classes + self.extra) + klass) * self.per + j for g in range(self.groups)
                for j in range(self.per)]


class Detector(nn.Module):
    """The contract every detector fulfils (see the module docstring). Subclasses set
    ``network_parts`` and ``family`` as class attributes and ``num_classes``,
    ``size_divisible``, ``fixed_size``, ``postprocess`` in ``__init__``."""

    network_parts: ClassVar[tuple[str, ...]] = ()
    family: ClassVar[str] = ""
    num_classes: int
    size_divisible: int
    fixed_size: int | None
    postprocess: nn.Module | object

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """The (height, width) the network sees for one image of ``image_size`` alone in its
        batch (the data pipeline's output size): padded to ``size_divisible``; a fixed-size
        model takes only its size."""
        if self.fixed_size is not None:
            self.check_size(image_size, "image")
        return padded_size(tuple(image_size), self.size_divisible)

    def image_batch(self, images) -> ImageBatch:
        """``images`` ((B, 3, H, W) or B (3, H_i, W_i) tensors in [0, 1]) padded to
        ``size_divisible``, on the model's device; every size checked for a fixed-size model."""
        batch = ImageBatch.from_images(images, self.size_divisible)
        if self.fixed_size is not None:
            for i, size in enumerate(batch.image_sizes):
                self.check_size(size, f"image {i}")
        return batch.to(self.pixel_mean.device)

    def check_size(self, size: Sequence[int], name: str) -> None:
        """ValueError unless ``size`` (height, width) is the fixed size (no-op without one)."""
        side = self.fixed_size
        if side is not None and tuple(int(s) for s in size) != (side, side):
            raise ValueError(f"{name}: size {size[0]}x{size[1]} (height x width), but this {type(self).__name__} takes "
                             f"{side}x{side} inputs; the data pipeline must resize images and boxes to ({side}, {side})")

    def class_layouts(self) -> dict[str, ClassLayout]:
        """Each class-specific tensor of ``state_dict()`` and its row layout."""
        raise NotImplementedError

    def training_anchors(self, image_size: tuple[int, int]) -> TrainingAnchors:
        raise NotImplementedError

    def loss(self, images, targets: Sequence[Targets]) -> dict[str, Tensor]:
        raise NotImplementedError

    def flat_detections(self, images: Tensor, image_sizes: Tensor, postprocess=None) -> FlatDetections:
        raise NotImplementedError

    @torch.inference_mode()  # no autograd bookkeeping at all (cheaper than no_grad)
    def predict(self, images, postprocess=None) -> list[Detections]:
        """Args:
            images: (B, 3, H, W) float tensor or a list of (3, H_i, W_i) float tensors, in [0, 1]
                (a fixed-size model: all of its size).
            postprocess: overrides the model's thresholds for this call.
        Returns:
            one ``Detections`` per image, boxes in that image's pixels, labels 0..K-1.
        """
        batch = self.image_batch(images)
        return self.flat_detections(batch.tensor, batch.image_sizes, postprocess).per_image(len(batch))


def network_parts(model: nn.Module, parts: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """The submodules at the dotted ``parts`` paths that ``model`` has, by path; ``parts`` None:
    the detector's own ``network_parts`` (none for a model that is not a ``Detector``: a model from
    elsewhere, torchvision's, names its own)."""
    if parts is None:
        parts = model.network_parts if isinstance(model, Detector) else ()
    found = {}
    for path in parts:
        try:
            found[path] = model.get_submodule(path)
        except AttributeError:
            continue
    return found


class DenseDetector(Detector):
    """Single-stage skeleton (RetinaNet, SSD; see the module docstring). Subclasses provide
    ``features``, ``anchors_for``, ``feature_modules``, ``dense_loss`` and set ``head``,
    ``box_coder``, ``target_builder``, ``postprocess``, ``score_kind`` ("sigmoid": one sigmoid per
    class; "softmax": one softmax over K + 1 logits, background last)."""

    score_kind: ClassVar[str] = ""
    head: nn.Module
    target_builder: DenseTargetBuilder
    postprocess: DensePostprocess

    def features(self, images: Tensor) -> list[Tensor]:
        """Normalised images (B, 3, H, W) -> the head's per-level feature maps."""
        raise NotImplementedError

    def feature_modules(self) -> list[nn.Module]:
        """The modules from the images to the head's inputs, in order (for a shape-only forward)."""
        raise NotImplementedError

    def anchors_for(self, feature_sizes: list[tuple[int, int]], input_size: tuple[int, int],
                    device: torch.device | None = None) -> list[Tensor]:
        """Per-level anchors (A_l, 4) xyxy in input pixels, in the head's order."""
        raise NotImplementedError

    def dense_loss(self, out: DenseOutputs, dense: DenseTargets, normalizer: Tensor) -> dict[str, Tensor]:
        """The family's loss terms, each already divided by ``normalizer``."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> DenseOutputs:
        """images: (B, 3, H, W) float in [0, 1] as ``input_size`` gives them. Returns
        cls_logits (B, A, K) (sigmoid) or (B, A, K + 1) (softmax, background last), box_deltas
        (B, A, 4), anchors (A, 4) xyxy in input pixels, anchors per level."""
        if self.fixed_size is not None:
            self.check_size(images.shape[-2:], "images")
        features = self.features(normalize(images, self.pixel_mean, self.pixel_std))
        cls_per_level, box_per_level = self.head(features)
        anchors = self.anchors_for([tuple(f.shape[-2:]) for f in features], tuple(images.shape[-2:]), images.device)
        return DenseOutputs(torch.cat(cls_per_level, dim=1), torch.cat(box_per_level, dim=1), torch.cat(anchors),
                            [a.shape[0] for a in anchors])

    def training_anchors(self, image_size: tuple[int, int]) -> TrainingAnchors:
        """The anchors ``loss`` matches for one image of ``image_size`` (height, width, as the
        data pipeline resized it) alone in its batch, with the training matcher: what the anchor
        analysis reads. Feature map sizes come from a shape-only (meta) forward: nothing is computed."""
        input_size = self.input_size(image_size)
        feature_sizes = feature_map_sizes(self.feature_modules(), input_size)
        generator = self.anchors_generator()
        anchors = torch.cat(self.anchors_for(feature_sizes, input_size))
        image = input_size if self.fixed_size is not None else tuple(image_size)
        return TrainingAnchors(anchors, feature_sizes, input_size, image, generator,
                               self.target_builder.matcher, self.target_builder.allowed_border)

    def anchors_generator(self):
        """The anchor generator ``anchors_for`` uses (what the anchor analysis reports)."""
        raise NotImplementedError

    def loss(self, images, targets: Sequence[Targets]) -> dict[str, Tensor]:
        """The family's losses over the batch, each summed and divided by the number of positive
        anchors of the batch (at least 1). Under DDP the count is the mean over processes, so
        that the averaged gradients equal those of one process on the global batch.
        ``images`` as ``predict``."""
        batch = self.image_batch(images)
        validate_targets(list(targets), self.num_classes, len(batch))
        out = self(batch.tensor)
        dense = self.target_builder.build(out.anchors, [t.to(out.anchors.device) for t in targets])
        normalizer = reduce_mean(dense.num_positives.float()).clamp(min=1)
        return self.dense_loss(out, dense, normalizer)

    def flat_detections(self, images: Tensor, image_sizes: Tensor,
                        postprocess: DensePostprocess | None = None) -> FlatDetections:
        """The traceable core of ``predict`` (and what export traces): images (B, 3, H, W) in
        [0, 1] padded as ``forward`` wants them, image_sizes (B, 2) int64 each image's (height,
        width) before padding -> the batch's detections in input pixels."""
        return (postprocess or self.postprocess)(self(images), image_sizes, self.box_coder, self.score_kind)
