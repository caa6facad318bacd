"""Drawing detections on images (PIL), for `anchordet predict` and the demo."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from anchordet.files import atomic_write
from anchordet.structures.targets import Detections

# A fixed palette of distinguishable colours, cycled by class index.
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def to_pil(image: Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] -> RGB PIL image."""
    array = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


# Pictures whose longer side is below this are enlarged (by a whole factor) before drawing, so
# that captions stay readable on small images (a 64 px scene is drawn at 448 px).
READABLE_SIDE = 400


def readable_scale(height: int, width: int, target: int = READABLE_SIDE) -> int:
    """The whole factor that brings an image's longer side to at least ``target`` (1 if it is already)."""
    longest = max(1, height, width)
    return 1 if longest >= target else -(-target // longest)


def _caption_font(picture: Image.Image, box_side: float | None = None):
    """A font about 1/40 of the picture's shorter side, at most half the median box side (dense
    scenes of a large image: captions stay smaller than their boxes), 11 px at least (PIL's
    default bitmap font if FreeType is missing)."""
    size = min(picture.size) // 40
    if box_side is not None:
        size = min(size, int(box_side / 2))
    try:
        return ImageFont.load_default(size=max(11, size))
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def draw_detections(image: Image.Image | Tensor, detections: Detections, class_names: Sequence[str] | None = None,
                    score_thresh: float = 0.0, scale: int = 1) -> Image.Image:
    """Draw boxes with "label score" captions; ``scale`` enlarges small images first (see
    ``readable_scale``). Lines are about 1/300 of the picture's shorter side thick, at most 1/10
    of the median box side (1 px at least), so a large picture of many small boxes stays legible."""
    picture = to_pil(image) if isinstance(image, Tensor) else image.convert("RGB")
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    keep = detections.scores >= score_thresh
    box_side = _median_side(detections.boxes[keep]) * scale
    width = max(1, min(max(scale, min(picture.size) // 300), int(box_side / 10) if box_side else 10 ** 6))
    font = _caption_font(picture, box_side or None)
    for box, score, label in zip(detections.boxes[keep].tolist(), detections.scores[keep].tolist(),
                                 detections.labels[keep].tolist()):
        colour = PALETTE[label % len(PALETTE)]
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        name = class_names[label] if class_names else str(label)
        caption = f"{name} {score:.2f}"
        left, upper, right, lower = draw.textbbox((0, 0), caption, font=font)
        top = max(0, y1 - (lower - upper) - 2)
        draw.rectangle((x1, top, x1 + right - left + 2, top + lower - upper + 2), fill=colour)
        draw.text((x1 + 1 - left, top - upper), caption, fill=(0, 0, 0), font=font)
    return picture


def _median_side(boxes: Tensor) -> float:
    """The median of the boxes' shorter sides (0 without boxes)."""
    if not len(boxes):
        return 0.0
    sides = torch.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return float(sides.float().median())


def save_grid(pictures: Sequence[Image.Image], path: str | Path, columns: int = 4) -> Path:
    """Tile pictures (same size) into one PNG."""
    width, height = pictures[0].size
    rows = (len(pictures) + columns - 1) // columns
    grid = Image.new("RGB", (width * min(columns, len(pictures)), height * rows), (255, 255, 255))
    for i, picture in enumerate(pictures):
        grid.paste(picture, ((i % columns) * width, (i // columns) * height))
    return save_picture(grid, path)


def save_picture(picture: Image.Image, path: str | Path) -> Path:
    """Write a PIL picture atomically (``anchordet.files``), in the format of ``path``'s suffix."""
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: no image format for the suffix {path.suffix!r}")
    return atomic_write(path, lambda f: picture.save(f, format=image_format))
