"""The raw outputs of dense detectors' ``forward``: one fixed type, in train and eval alike
(DESIGN.md contract 1); this is what export traces."""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


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
