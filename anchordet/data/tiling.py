"""``anchordet data tile``: cut a dataset's large images into overlapping tiles, written as a
COCO dataset that any anchordet command reads (as DeepForest's ``split_raster`` and SAHI's
``slice_coco`` do).

Tiles are ``size`` x ``size`` windows at the image's own resolution, ``overlap`` (a fraction of
``size``) shared by neighbours; the last row and column are flush with the image's edges, so
every pixel is in some tile (a side shorter than ``size`` is one tile of that side). A box is
clipped to a tile and kept when at least ``min_visible`` of its area is inside; ignore regions
(crowd / difficult) follow the same rule and stay ignore regions. Tiles without a kept box are
negatives: at most ``empty_ratio`` of them per tile with objects are kept in each split (a
seeded choice, all of them for a split without any object), so the detector sees background
without being swamped by it. ``tiles.json`` maps every tile to its source image and offset.

Layout under ``out``: ``images/<split>/<stem>_<x>_<y>.png`` (PNG: no second lossy compression),
``annotations/instances_<split>.json``, ``data.yaml``, ``tiles.json``. Torch-free.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from anchordet.errors import UserError

DEFAULT_OVERLAP = 0.2
DEFAULT_MIN_VISIBLE = 0.5
# One empty tile kept for every five with objects: enough background that the detector learns
# it, few enough that an aerial scene with large empty areas does not drown its objects.
DEFAULT_EMPTY_RATIO = 0.2


def tile_starts(length: int, size: int, overlap: float) -> list[int]:
    """Start offsets of tiles of ``size`` along a side of ``length``: a step of
    size * (1 - overlap) (at least 1 pixel), the last tile flush with the end."""
    if length <= size:
        return [0]
    step = max(1, int(size * (1 - overlap)))
    starts = list(range(0, length - size, step))
    return starts + [length - size]


def tile_windows(height: int, width: int, size: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of every tile, row by row."""
    return [(left, top, min(left + size, width), min(top + size, height))
            for top in tile_starts(height, size, overlap) for left in tile_starts(width, size, overlap)]


def crop_boxes(boxes: np.ndarray, window: tuple[int, int, int, int], min_visible: float) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (M, 4) in tile pixels, indices (M,) into ``boxes``) of the boxes (N, 4) xyxy that
    keep at least ``min_visible`` of their area inside ``window``, clipped to it."""
    left, top, right, bottom = window
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    clipped = np.stack([np.clip(boxes[:, 0], left, right), np.clip(boxes[:, 1], top, bottom),
                        np.clip(boxes[:, 2], left, right), np.clip(boxes[:, 3], top, bottom)], axis=1)
    area = (boxes[:, 2] - boxes[:, 0]).clip(min=0) * (boxes[:, 3] - boxes[:, 1]).clip(min=0)
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = np.nonzero((visible > 0) & (visible >= min_visible * area))[0]
    return clipped[keep] - np.array([left, top, left, top], dtype=np.float64), keep


@dataclass
class Tile:
    file_name: str
    source: str
    source_image_id: int
    window: tuple[int, int, int, int]
    boxes: np.ndarray
    labels: list[int]
    ignore: list[bool]


def check_tile_options(size: int, overlap: float, min_visible: float, empty_ratio: float) -> None:
    if size < 1:
        raise UserError(f"--size must be a positive number of pixels, got {size}")
    if not 0 <= overlap < 1:
        raise UserError(f"--overlap is a fraction of the tile in [0, 1), got {overlap}")
    if not 0 < min_visible <= 1:
        raise UserError(f"--min-visible is a fraction of a box's area in (0, 1], got {min_visible}")
    if not (math.isfinite(empty_ratio) and empty_ratio >= 0):
        raise UserError(f"--empty-ratio must be >= 0 (empty tiles kept per tile with objects), got {empty_ratio}")


def tile_dataset(spec, out: str | Path, size: int, overlap: float = DEFAULT_OVERLAP,
                 min_visible: float = DEFAULT_MIN_VISIBLE, empty_ratio: float = DEFAULT_EMPTY_RATIO,
                 seed: int = 0) -> dict[str, dict[str, int]]:
    """Write the tiled dataset of ``spec`` (a ``DatasetSpec``) under ``out`` (new or empty).

    Returns per split {"images", "tiles", "empty_tiles", "boxes"}: source images, tiles written,
    empty tiles among them, boxes written.
    """
    from anchordet.data.convert import read_source, write_new_folder

    check_tile_options(size, overlap, min_visible, empty_ratio)
    source = read_source(spec)

    def write(temp: Path) -> dict:
        counts, mapping, entries = {}, {}, {}
        for split in source.splits:
            tiles = _split_tiles(split, size, overlap, min_visible)
            tiles = _keep_some_empty(tiles, empty_ratio, random.Random(seed))
            _write_tiles(split, tiles, temp / "images" / split.name)
            gt = _coco_json(tiles, source)
            (temp / "annotations").mkdir(exist_ok=True)
            (temp / "annotations" / f"instances_{split.name}.json").write_text(json.dumps(gt), encoding="utf-8")
            mapping[split.name] = [{"id": k, "file_name": t.file_name, "source": t.source,
                                    "source_image_id": t.source_image_id, "x": t.window[0], "y": t.window[1],
                                    "width": t.window[2] - t.window[0], "height": t.window[3] - t.window[1]}
                                   for k, t in enumerate(tiles)]
            entries[split.name] = {"images": f"images/{split.name}", "annotations": f"annotations/instances_{split.name}.json"}
            counts[split.name] = {"images": len(split.images), "tiles": len(tiles),
                                  "empty_tiles": sum(not t.labels for t in tiles), "boxes": len(gt["annotations"])}
        options = {"size": size, "overlap": overlap, "min_visible": min_visible, "empty_ratio": empty_ratio,
                   "seed": seed, "source": str(spec.source)}
        (temp / "tiles.json").write_text(json.dumps({**options, "tiles": mapping}, indent=1), encoding="utf-8")
        data_yaml = {"format": "coco", "root": ".", "names": list(source.class_names), **entries}
        (temp / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False), encoding="utf-8")
        return counts

    return write_new_folder(Path(out), write)


def _split_tiles(split, size: int, overlap: float, min_visible: float) -> list[Tile]:
    tiles, stems = [], set()
    for image in split.images:
        height, width = image.size
        boxes = np.asarray(image.boxes, dtype=np.float64).reshape(-1, 4)
        stem = Path(image.name).stem
        stem = stem if stem not in stems else f"{image.image_id}_{stem}"  # a.png and a.jpg: names stay unique
        stems.add(stem)
        for window in tile_windows(height, width, size, overlap):
            kept, index = crop_boxes(boxes, window, min_visible)
            tiles.append(Tile(f"{stem}_{window[0]}_{window[1]}.png", str(image.source or image.name), image.image_id,
                              window, kept, [image.labels[i] for i in index], [image.ignore[i] for i in index]))
    return tiles


def _keep_some_empty(tiles: list[Tile], ratio: float, rng: random.Random) -> list[Tile]:
    """All tiles with a box, and at most ``ratio`` empty ones per such tile (a seeded choice; all
    when no tile has a box), in their original order."""
    full = [k for k, t in enumerate(tiles) if t.labels]
    empty = [k for k, t in enumerate(tiles) if not t.labels]
    if full:
        empty = sorted(rng.sample(empty, min(len(empty), int(ratio * len(full)))))
    kept = set(full) | set(empty)
    return [t for k, t in enumerate(tiles) if k in kept]


def _write_tiles(split, tiles: list[Tile], folder: Path) -> None:
    """Each source image decoded once, its kept tiles cut and saved as PNG."""
    from PIL import Image

    from anchordet.data.image_io import decode_image

    folder.mkdir(parents=True, exist_ok=True)
    by_source: dict[int, list[Tile]] = {}
    for tile in tiles:
        by_source.setdefault(tile.source_image_id, []).append(tile)
    for image in split.images:
        wanted = by_source.get(image.image_id)
        if not wanted:
            continue
        path = image.source
        if path is None:  # a generated image (digits): render it once
            path = folder / f".source_{image.image_id}.png"
            image.render(path)
        pixels = (decode_image(path) * 255).round().astype(np.uint8)
        if image.source is None:
            path.unlink()
        for tile in wanted:
            left, top, right, bottom = tile.window
            Image.fromarray(pixels[top:bottom, left:right]).save(folder / tile.file_name)


def _coco_json(tiles: list[Tile], source) -> dict:
    images, annotations = [], []
    for image_id, tile in enumerate(tiles):
        left, top, right, bottom = tile.window
        images.append({"id": image_id, "file_name": tile.file_name, "width": right - left, "height": bottom - top})
        for (x1, y1, x2, y2), label, ignore in zip(tile.boxes.tolist(), tile.labels, tile.ignore):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": source.category_ids[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": int(ignore)})
    categories = [{"id": c, "name": n} for c, n in zip(source.category_ids, source.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}
