"""The raw outputs of dense detectors' ``forward``: one fixed type, in train and eval alike
(docs/design.md contract 1); this is what export traces."""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from anchordet.structures.targets import Detections


class DenseOutputs(NamedTuple):
    """Raw outputs of a dense (single-stage) detector for a batch of B images.

    Attributes:
        cls_logits: (B, A, C) logits; C = K for sigmoid heads (RetinaNet), K + 1 for softmax
            heads (SSD; background is the last logit, index K).
        box_deltas: (B, A, 4) encoded box deltas (see ``BoxCoder``).
        anchors: (A, 4) xyxy anchors in input pixels, shared by the batch.
        num_anchors_per_level: A_l per level; sums to A. Levels are concatenated in order.
    """

    cls_logits: Tensor
    box_deltas: Tensor
    anchors: Tensor
    num_anchors_per_level: list[int]


class FlatDetections(NamedTuple):
    """The detections of a batch of B images as four flat tensors: what the traceable
    post-processing returns (and so an exported model's outputs), and what ``predict`` splits
    into one ``Detections`` per image.

    Attributes:
        boxes: (N, 4) xyxy in the pixels of the (padded) input batch.
        scores: (N,) float, decreasing (over the whole batch).
        labels: (N,) int64 in 0..K-1.
        batch_index: (N,) int64, the image of each detection.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    batch_index: Tensor

    def per_image(self, batch_size: int) -> list[Detections]:
        """One ``Detections`` per image 0..batch_size-1 (scores stay decreasing)."""
        return [Detections(self.boxes[mine], self.scores[mine], self.labels[mine])
                for mine in (self.batch_index == i for i in range(batch_size))]
