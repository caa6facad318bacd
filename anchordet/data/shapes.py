"""Tiny generated scenes: solid-coloured rectangles on noise, one colour per class.

A task a tiny model learns in a few dozen steps: the detectors' overfit tests and the smoke
demo use it. For a real (if small) dataset use ``anchordet.data.digits``.
"""
from __future__ import annotations

import torch

from anchordet.structures.boxes import box_iou
from anchordet.structures.targets import Detections, Targets

CLASS_COLOURS = torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.2, 1.0]])


def make_scenes(num_images: int = 4, size: int = 96, max_boxes: int = 3, min_side: int = 20,
                max_side: int = 44, seed: int = 0) -> tuple[list[torch.Tensor], list[Targets]]:
    """``num_images`` (3, size, size) images in [0, 1] with 1..max_boxes non-overlapping
    rectangles each, and their ``Targets`` (labels 0..2, one per colour)."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(num_images):
        image = torch.rand(3, size, size, generator=g) * 0.3
        boxes, labels = [], []
        n = int(torch.randint(1, max_boxes + 1, (1,), generator=g))
        for _ in range(50):
            if len(boxes) == n:
                break
            w, h = torch.randint(min_side, max_side + 1, (2,), generator=g).tolist()
            x, y = int(torch.randint(0, size - w, (1,), generator=g)), int(torch.randint(0, size - h, (1,), generator=g))
            box = torch.tensor([[x, y, x + w, y + h]], dtype=torch.float32)
            if boxes and box_iou(box, torch.cat(boxes)).max() > 0.0:
                continue
            label = int(torch.randint(0, len(CLASS_COLOURS), (1,), generator=g))
            image[:, y:y + h, x:x + w] = CLASS_COLOURS[label][:, None, None]
            boxes.append(box)
            labels.append(label)
        images.append(image)
        targets.append(Targets(torch.cat(boxes), torch.tensor(labels)))
    return images, targets


def all_found(detections: list[Detections], targets: list[Targets], iou: float = 0.5, score: float = 0.3) -> bool:
    """True when every gt box has a detection of the right class with IoU >= ``iou``."""
    for det, gt in zip(detections, targets):
        det = det.select(det.scores >= score)
        for box, label in zip(gt.boxes, gt.labels):
            same = det.labels == label
            if not bool(same.any()) or box_iou(box[None], det.boxes[same]).max() < iou:
                return False
    return True
