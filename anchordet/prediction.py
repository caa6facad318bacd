"""What ``Predictor.predict`` returns: a ``Prediction`` per image (or a ``Skipped`` input).

Its own module so that the modules around the predictor (``anchordet.tiling``) can name these
types without importing the predictor; ``anchordet.predictor`` re-exports both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import Tensor

from anchordet.structures.targets import Detections


@dataclass
class Prediction:
    """The detections of one image, in that image's own pixels.

    Attributes:
        detections: boxes (N, 4) xyxy float, scores (N,) decreasing, labels (N,) int64 in 0..K-1.
        class_names: the model's K class names (``class_names[label]``).
        category_ids: the dataset's category id of each label (COCO results use them).
        source: the file (or ``"<image N>"`` for in-memory images, ``"<path>#frame N"`` for video).
        image_size: (height, width) of the image.
        frame: the frame number for video frames, else None.
    """

    detections: Detections
    class_names: Sequence[str]
    category_ids: Sequence[int]
    source: str
    image_size: tuple[int, int]
    frame: int | None = None

    @property
    def boxes(self) -> Tensor:
        return self.detections.boxes

    @property
    def scores(self) -> Tensor:
        return self.detections.scores

    @property
    def labels(self) -> Tensor:
        return self.detections.labels

    @property
    def names(self) -> list[str]:
        """The class name of each detection."""
        return [self.class_names[int(label)] for label in self.labels]

    def __len__(self) -> int:
        return len(self.detections)

    def to_coco(self, image_id: int) -> list[dict]:
        """COCO results ({image_id, category_id, bbox [x, y, w, h], score})."""
        from anchordet.evaluation import detections_to_coco_results

        d = self.detections
        return detections_to_coco_results(image_id, d.boxes, d.scores, d.labels, list(self.category_ids))


@dataclass
class Skipped:
    """An input that could not be read (``Predictor.stream(..., skip_unreadable=True)``)."""

    source: str
    reason: str
