"""Tiled prediction: large images cut into windows at their own resolution, merged back.

``Predictor.predict(..., tile=SIZE)`` and ``anchordet predict / evaluate --tile SIZE`` go through
``predict_tiled``:

1. ``tile_windows``: SIZE x SIZE windows, neighbours overlapping by ``overlap`` of SIZE, the last
   row and column flush with the image's bottom and right edges (so every pixel is covered and
   every window is whole; an image side shorter than SIZE gives windows of that side).
2. The windows are read ``batch_size`` at a time from an ``ImageSource`` (an in-memory tensor, or
   a TIFF read window by window: ``data/tiff_windows.py``) and go through ``detect``: ONE call of
   the predictor per batch, which resizes each crop as the model was evaluated, runs the network
   (in its precision) and returns each crop's detections in crop pixels.
3. Boxes are shifted back to image pixels and merged across tiles (``ops/merge.py``): greedy NMS
   (default) or SAHI-style greedy NMM, by IoS (default) or IoU, so an object cut by a tile edge
   gives one box.
4. ``full``: one more pass over the whole image, reduced (``reduced_image``), for objects larger
   than a tile; its boxes are merged with the tiles' (it counts as a tile overlapping all).

Memory: the image source (for a TIFF: nothing but the file handle), one batch of crops and
their resized copies, and the detections. A full pass adds the reduced image (longer side
``FULL_PASS_SIDE`` at most) and one block of ``REDUCE_BLOCK`` x ``REDUCE_BLOCK`` reduced pixels.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from anchordet.errors import UserError
from anchordet.ops.merge import METHODS, METRICS, greedy_nmm, greedy_nms, tile_pairs
from anchordet.prediction import Prediction, Skipped
from anchordet.structures.targets import Detections

FULL_PASS_SIDE = 2048  # the full pass (and a large image's picture) reads the image reduced to this longer side
REDUCE_BLOCK = 256  # reduced pixels per block side while reducing (bounds the memory of one read)


@dataclass(frozen=True)
class TileOptions:
    """How ``predict_tiled`` cuts and merges.

    Attributes:
        size: window side in image pixels.
        overlap: neighbouring windows share ``round(size * overlap)`` pixels, in [0, 1).
        merge: "nms" (drop the lower-scoring box of a matched pair) or "nmm" (merge them into
            their enclosing box, SAHI's greedy NMM).
        metric: "ios" (intersection over the smaller box) or "iou"; threshold: a pair matches above it.
        full: also predict on the whole image, reduced, for objects larger than a tile.
        batch_size: windows per forward pass.
    """

    size: int
    overlap: float = 0.2
    merge: str = "nms"
    metric: str = "ios"
    threshold: float = 0.5
    full: bool = False
    batch_size: int = 8

    def __post_init__(self):
        if isinstance(self.size, bool) or int(self.size) != self.size or self.size < 1:
            raise UserError(f"tile size must be an integer >= 1, got {self.size}")
        if not 0.0 <= float(self.overlap) < 1.0:  # False for NaN too
            raise UserError(f"tile overlap must be in [0, 1), got {self.overlap}")
        if self.merge not in METHODS:
            raise UserError(f"tile merge must be one of {', '.join(METHODS)}, got {self.merge!r}")
        if self.metric not in METRICS:
            raise UserError(f"tile merge metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise UserError(f"tile merge threshold must be in [0, 1], got {self.threshold}")
        if self.batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")


def tile_options(tile: int | None, tile_overlap: float = 0.2, batch_size: int = 8, *, tile_merge: str = "nms",
                 tile_metric: str = "ios", tile_merge_thresh: float = 0.5, tile_full: bool = False) -> TileOptions | None:
    """``Predictor.predict``'s tiling arguments as checked ``TileOptions`` (None: ``tile`` is None,
    and then no other tiling argument may differ from its default)."""
    if tile is None:
        given = dict(tile_overlap=tile_overlap, tile_merge=tile_merge, tile_metric=tile_metric,
                     tile_merge_thresh=tile_merge_thresh, tile_full=tile_full)
        defaults = dict(tile_overlap=0.2, tile_merge="nms", tile_metric="ios", tile_merge_thresh=0.5, tile_full=False)
        changed = [name for name in given if given[name] != defaults[name]]
        if changed:
            raise UserError(f"{', '.join(changed)} given without tile")
        return None
    return TileOptions(tile, tile_overlap, tile_merge, tile_metric, tile_merge_thresh, bool(tile_full), batch_size)


def tile_windows(height: int, width: int, size: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Windows ``(x0, y0, x1, y1)`` covering a ``height`` x ``width`` image, row by row.

    Starts step by ``size - round(size * overlap)`` (at least 1); one more start is added when
    the last window would stop short of the edge, so the last row and column end exactly at the
    edge. A side shorter than ``size`` has one window of that side.
    """
    step = max(1, size - round(size * overlap))

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        found = list(range(0, length - size + 1, step))
        if found[-1] + size < length:
            found.append(length - size)
        return found

    return [(x, y, min(x + size, width), min(y + size, height)) for y in starts(height) for x in starts(width)]


def overlapping_windows(windows: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """Pairs (g, h), g < h, of windows that share pixels: only their boxes can overlap."""
    w = torch.tensor(windows, dtype=torch.int64).reshape(-1, 4)
    share = ((torch.minimum(w[:, None, 2], w[None, :, 2]) > torch.maximum(w[:, None, 0], w[None, :, 0]))
             & (torch.minimum(w[:, None, 3], w[None, :, 3]) > torch.maximum(w[:, None, 1], w[None, :, 1])))
    g, h = torch.nonzero(torch.triu(share, diagonal=1), as_tuple=True)
    return list(zip(g.tolist(), h.tolist()))


# ------------------------------------------------------------------------------ image sources
class ImageSource(Protocol):
    """Where windows come from: ``height``, ``width``, ``read(y0, x0, y1, x1) -> (3, h, w) float``."""

    name: str
    height: int
    width: int

    def read(self, y0: int, x0: int, y1: int, x1: int) -> Tensor: ...

    def close(self) -> None: ...


class TensorSource:
    """An image already in memory: (3, H, W) float in [0, 1]."""

    def __init__(self, image: Tensor, name: str = "image"):
        self.image, self.name = image, name
        self.height, self.width = int(image.shape[-2]), int(image.shape[-1])

    def read(self, y0: int, x0: int, y1: int, x1: int) -> Tensor:
        return self.image[:, y0:y1, x0:x1]

    def close(self) -> None:
        pass


class TiffSource:
    """A TIFF file read window by window (``anchordet.data.tiff_windows``): no size limit."""

    def __init__(self, path: str | Path):
        from anchordet.data.tiff_windows import TiffWindows

        self.name = str(path)
        self._windows = TiffWindows(path)
        self.height, self.width = self._windows.height, self._windows.width

    def read(self, y0: int, x0: int, y1: int, x1: int) -> Tensor:
        return torch.from_numpy(self._windows.read(y0, x0, y1, x1)).permute(2, 0, 1)

    def close(self) -> None:
        self._windows.close()


def open_source(item: Any, name: str) -> ImageSource:
    """A TIFF path -> ``TiffSource`` (windowed, no pixel limit); another path -> read whole
    (``image_io``'s decompression-bomb limit applies); an in-memory image -> ``TensorSource``."""
    from anchordet.data.image_io import as_image_tensor
    from anchordet.data.tiff_windows import is_tiff

    if isinstance(item, (str, Path)) and is_tiff(item):
        return TiffSource(item)
    return TensorSource(as_image_tensor(item, name), name)


def reduced_image(source: ImageSource, longest: int = FULL_PASS_SIDE) -> tuple[Tensor, float]:
    """The whole image with its longer side at most ``longest`` (area averaging by a whole factor),
    read block by block. Returns ((3, h, w) float, factor): image pixels = reduced pixels * factor."""
    factor = max(1, math.ceil(max(source.height, source.width) / longest))
    if factor == 1:
        return source.read(0, 0, source.height, source.width), 1.0
    block = REDUCE_BLOCK * factor
    rows = []
    for y in range(0, source.height, block):
        parts = []
        for x in range(0, source.width, block):
            crop = source.read(y, x, min(y + block, source.height), min(x + block, source.width))
            parts.append(F.avg_pool2d(crop[None].float(), factor, ceil_mode=True)[0])
        rows.append(torch.cat(parts, dim=2))
    return torch.cat(rows, dim=1), float(factor)


# ------------------------------------------------------------------------------- prediction
def predict_tiled(source: ImageSource, detect: Callable[[list[Tensor]], list[Detections]], options: TileOptions,
                  class_agnostic: bool = False) -> Detections:
    """Detections of the whole image in its own pixels (see the module docstring).

    Args:
        source: the image. detect: list of (3, h, w) crops -> their ``Detections`` in crop pixels.
        class_agnostic: merge boxes of different classes too (``class_agnostic_nms``).
    Returns:
        merged detections, scores decreasing.
    """
    windows = tile_windows(source.height, source.width, options.size, options.overlap)
    parts, groups = [], []
    for first, batch in _batches(windows, options.batch_size):
        crops = [source.read(y0, x0, y1, x1) for x0, y0, x1, y1 in batch]
        for index, ((x0, y0, _, _), det) in enumerate(zip(batch, detect(crops)), start=first):
            shift = det.boxes.new_tensor([x0, y0, x0, y0])
            parts.append(Detections(det.boxes + shift, det.scores, det.labels))
            groups.append(torch.full((len(det),), index, dtype=torch.int64))
    neighbours = overlapping_windows(windows)
    if options.full and len(windows) > 1:
        image, factor = reduced_image(source)
        det = detect([image])[0]
        parts.append(Detections(det.boxes * factor, det.scores, det.labels))
        groups.append(torch.full((len(det),), len(windows), dtype=torch.int64))
        neighbours += [(g, len(windows)) for g in range(len(windows))]
    return merge_tiles(_concat(parts), torch.cat(groups), neighbours, options, class_agnostic)


def merge_tiles(det: Detections, groups: Tensor, neighbours: Sequence[tuple[int, int]], options: TileOptions,
                class_agnostic: bool = False) -> Detections:
    """Merge the boxes of different tiles that match (``ops/merge.py``); scores decreasing."""
    pairs = tile_pairs(det.boxes, det.labels, groups, neighbours, options.metric, options.threshold, class_agnostic)
    if options.merge == "nmm":
        keep, boxes = greedy_nmm(det.boxes, det.scores, pairs)
        return Detections(boxes.to(det.boxes.dtype), det.scores[keep], det.labels[keep])
    return det.select(greedy_nms(det.scores, pairs))


def _batches(items: list, size: int) -> Iterator[tuple[int, list]]:
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


def _concat(parts: list[Detections]) -> Detections:
    if not parts:
        return Detections.empty()
    return Detections(torch.cat([p.boxes.float() for p in parts]), torch.cat([p.scores.float() for p in parts]),
                      torch.cat([p.labels for p in parts]))


# ------------------------------------------------------------------------- with a Predictor
def detect_tiled(predictor, image: ImageSource, options, tiling: TileOptions) -> Detections:
    """One image through ``predict_tiled``: each batch of windows goes through the predictor's one
    batch method (``detect_batch``: resize, network, map back, filters) with the model's own cap
    per tile; ``options.max_detections``, if given, caps the merged image."""
    per_tile = dataclasses.replace(options, max_detections=None)
    merged = predict_tiled(image, lambda crops: predictor.detect_batch(crops, per_tile), tiling,
                           class_agnostic=options.class_agnostic_nms)
    cap = options.max_detections
    return merged.select(torch.arange(cap)) if cap is not None and len(merged) > cap else merged


def stream_tiled(predictor, items: Iterable[tuple[str, Any]], options, tiling: TileOptions,
                 skip_unreadable: bool) -> Iterator[Prediction | Skipped]:
    """``Predictor.stream(..., tile=)``: (name, item) inputs, one ``Prediction`` each, in order."""
    for name, item in items:
        try:
            image = open_source(item, name)
        except (UserError, OSError) as exc:
            if not skip_unreadable:
                raise
            yield Skipped(name, str(exc))
            continue
        try:
            detections = detect_tiled(predictor, image, options, tiling)
        finally:
            image.close()
        yield Prediction(detections, predictor.class_names, predictor.category_ids, name, (image.height, image.width))


def detect_frames(predictor, frames: list[Tensor], options, tiling: TileOptions | None) -> list[Detections]:
    """A batch of video frames: through ``detect_batch`` at once, or each tiled."""
    if tiling is None:
        return predictor.detect_batch(frames, options)
    return [detect_tiled(predictor, TensorSource(frame, "frame"), options, tiling) for frame in frames]
