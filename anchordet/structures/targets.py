"""Per-image ground truth (``Targets``) and predictions (``Detections``).

Boxes are ``(N, 4)`` float xyxy in absolute pixels of the image the model sees; labels are
int64 in ``0..K-1`` (``num_classes = K`` never counts background; docs/design.md contracts 2, 3).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor


def _empty_boxes() -> Tensor:
    return torch.zeros((0, 4), dtype=torch.float32)


def _empty_labels() -> Tensor:
    return torch.zeros((0,), dtype=torch.int64)


@dataclass
class Targets:
    """Ground truth of one image.

    Attributes:
        boxes: (N, 4) float32 xyxy, absolute pixels.
        labels: (N,) int64 in 0..K-1.
        ignore: (N,) bool or None (= all False). True for COCO ``iscrowd`` regions and VOC
            ``difficult`` objects: in training, anchors that overlap them are neither positives
            nor negatives; each evaluator applies its own metric's rule to them.
    """

    boxes: Tensor = field(default_factory=_empty_boxes)
    labels: Tensor = field(default_factory=_empty_labels)
    ignore: Tensor | None = None

    def __post_init__(self) -> None:
        if self.ignore is None:
            self.ignore = torch.zeros(self.labels.shape[0], dtype=torch.bool, device=self.labels.device)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> "Targets":
        return Targets(self.boxes.to(device), self.labels.to(device), self.ignore.to(device))

    def select(self, keep: Tensor) -> "Targets":
        """Targets restricted to ``keep`` (a bool mask or an index tensor)."""
        return Targets(self.boxes[keep], self.labels[keep], self.ignore[keep])

    def with_boxes(self, boxes: Tensor) -> "Targets":
        return replace(self, boxes=boxes)

    @property
    def trainable(self) -> "Targets":
        """The boxes that are learned from (``ignore`` is False)."""
        return self.select(~self.ignore)

    @property
    def ignored_boxes(self) -> Tensor:
        """(M, 4) the ignore regions."""
        return self.boxes[self.ignore]


@dataclass
class Detections:
    """Predictions for one image.

    Attributes:
        boxes: (N, 4) float xyxy in the pixels of the image given to ``predict`` (or of the
            original image after ``postprocess.rescale``).
        scores: (N,) float in [0, 1], sorted in decreasing order.
        labels: (N,) int64 in 0..K-1.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> "Detections":
        return Detections(self.boxes.to(device), self.scores.to(device), self.labels.to(device))

    def select(self, keep: Tensor) -> "Detections":
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])

    @staticmethod
    def empty(device: torch.device | str = "cpu") -> "Detections":
        return Detections(
            torch.zeros((0, 4), device=device),
            torch.zeros((0,), device=device),
            torch.zeros((0,), dtype=torch.int64, device=device),
        )


def _describe_box(image_index: int, box_index: int, box: Tensor) -> str:
    values = ", ".join(f"{v:g}" for v in box.tolist())
    return f"image {image_index}, box {box_index}: [{values}]"


def validate_targets(targets: list[Targets], num_classes: int, num_images: int | None = None) -> None:
    """Check targets at the public API boundary (docs/design.md contract 6).

    Raises:
        ValueError naming the image index, the box index and the offending value, for: not a
        ``Targets``; boxes not (N, 4) float; labels not (N,) integer; non-finite coordinates;
        x2 <= x1 or y2 <= y1; labels outside 0..num_classes-1.
    """
    if num_images is not None and len(targets) != num_images:
        raise ValueError(f"got {len(targets)} Targets for {num_images} images; give one per image")
    for i, t in enumerate(targets):
        if not isinstance(t, Targets):
            raise ValueError(f"image {i}: expected anchordet.Targets, got {type(t).__name__}")
        boxes, labels = t.boxes, t.labels
        if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4:
            shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
            raise ValueError(f"image {i}: boxes must be a (N, 4) tensor, got {shape}")
        if not boxes.is_floating_point():
            raise ValueError(f"image {i}: boxes must be floating point, got {boxes.dtype}")
        if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.shape[0] != boxes.shape[0]:
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"image {i}: labels must be a ({boxes.shape[0]},) tensor, got {shape}")
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"image {i}: labels must be integers, got {labels.dtype}")
        if t.ignore.shape != labels.shape:
            raise ValueError(f"image {i}: ignore must be a ({labels.shape[0]},) bool tensor")
        _check_box_values(i, boxes)
        bad = ((labels < 0) | (labels >= num_classes)).nonzero()
        if bad.numel():
            j = int(bad[0])
            raise ValueError(
                f"image {i}, box {j}: label {int(labels[j])} outside 0..{num_classes - 1} "
                f"(num_classes={num_classes}, background is not a label)"
            )


def _check_box_values(image_index: int, boxes: Tensor) -> None:
    finite = torch.isfinite(boxes).all(dim=1)
    if not bool(finite.all()):
        j = int((~finite).nonzero()[0])
        raise ValueError(f"{_describe_box(image_index, j, boxes[j])} has a non-finite coordinate")
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bool(degenerate.any()):
        j = int(degenerate.nonzero()[0])
        raise ValueError(
            f"{_describe_box(image_index, j, boxes[j])} is degenerate: need x2 > x1 and y2 > y1 "
            "(boxes are x1, y1, x2, y2 in pixels)"
        )
