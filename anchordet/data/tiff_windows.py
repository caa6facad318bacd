"""Reading windows of large TIFF / GeoTIFF files with tifffile, without decoding the whole image.

A TIFF stores its pixels in segments: tiles (tiled TIFF, the usual GeoTIFF / orthophoto layout)
or strips of rows. ``TiffWindows.read`` reads and decodes only the segments a window touches, so
the memory of one read is the window itself plus the segments around it: a 512 px window of a
20000 x 20000 orthophoto with 256 px tiles decodes at most 9 tiles. (A striped TIFF without tiles
decodes whole strips: rows x full width per strip; still far below the whole image.)

This module is torch-free (``check-data`` and ``score`` never import torch). Values are scaled as
``image_io`` scales them: uint8 / 255, uint16 / 65535, floats clipped to [0, 1]; gray images are
repeated to RGB and a fourth (alpha) sample is dropped.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from anchordet.errors import UserError

TIFF_SUFFIXES = (".tif", ".tiff")


class TiffWindows:
    """An open TIFF file (its first page) read window by window.

    Attributes:
        path: the file. height, width: the image's size in pixels.
    """

    def __init__(self, path: str | Path):
        import tifffile

        self.path = Path(path)
        try:
            self._file = tifffile.TiffFile(self.path)
        except (tifffile.TiffFileError, OSError, ValueError) as exc:
            raise UserError(f"{self.path}: not a readable TIFF file ({exc})") from None
        if not len(self._file.pages):
            self._file.close()
            raise UserError(f"{self.path}: a TIFF file without an image (no pages)")
        self._page = self._file.pages.first
        page = self._page
        self.height, self.width, depth = int(page.imagelength), int(page.imagewidth), int(page.imagedepth)
        self.samples = int(page.samplesperpixel)
        self._planes = self.samples if int(page.planarconfig) == 2 and self.samples > 1 else 1  # 2: SEPARATE
        if depth != 1 or self.samples not in (1, 2, 3, 4) or page.dtype is None:
            raise UserError(f"{self.path}: windowed reading takes a 2-D gray, RGB or RGBA TIFF page; this one has "
                            f"shape {page.shape} and data type {page.dtype}")
        if page.is_tiled:
            self._segment = (int(page.tilelength), int(page.tilewidth))
        else:
            self._segment = (int(page.rowsperstrip) if page.rowsperstrip else self.height, self.width)
        self._across = math.ceil(self.width / self._segment[1])
        self._per_plane = self._across * math.ceil(self.height / self._segment[0])
        self._decode = page.decode

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TiffWindows":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        """Pixels [y0:y1, x0:x1] as (y1 - y0, x1 - x0, 3) float32 RGB in [0, 1]."""
        if not (0 <= y0 < y1 <= self.height and 0 <= x0 < x1 <= self.width):
            raise ValueError(f"window [{y0}:{y1}, {x0}:{x1}] outside the {self.height} x {self.width} image")
        raw = np.zeros((y1 - y0, x1 - x0, self.samples), dtype=self._page.dtype)
        seg_h, seg_w = self._segment
        for plane in range(self._planes):
            for row in range(y0 // seg_h, (y1 - 1) // seg_h + 1):
                for col in range(x0 // seg_w, (x1 - 1) // seg_w + 1):
                    self._paste(plane * self._per_plane + row * self._across + col, raw, y0, x0)
        return _to_rgb(raw)

    def _paste(self, index: int, out: np.ndarray, y0: int, x0: int) -> None:
        """Decode segment ``index`` and copy its part inside the window into ``out``."""
        page = self._page
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        data = None
        if offset and count:
            handle = self._file.filehandle
            with handle.lock:
                handle.seek(offset)
                data = handle.read(count)
        try:
            segment, (plane, _, top, left, _), _ = self._decode(data, index, jpegtables=page.jpegtables)
        except Exception as exc:  # codec errors come as ValueError, NotImplementedError or the codec's own
            raise UserError(f"{self.path}: cannot decode TIFF segment {index} ({page.compression.name} "
                            f"compression: {exc}); `pip install imagecodecs` adds the codecs tifffile lacks") from None
        if segment is None:  # an empty segment: zeros
            return
        segment = segment.reshape(segment.shape[-3], segment.shape[-2], segment.shape[-1])  # (rows, cols, samples)
        rows = slice(max(top, y0), min(top + segment.shape[0], y0 + out.shape[0]))
        cols = slice(max(left, x0), min(left + segment.shape[1], x0 + out.shape[1]))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            return
        channels = slice(plane, plane + 1) if self._planes > 1 else slice(0, self.samples)
        out[rows.start - y0:rows.stop - y0, cols.start - x0:cols.stop - x0, channels] = \
            segment[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left]


def _to_rgb(raw: np.ndarray) -> np.ndarray:
    """(h, w, samples) of any dtype -> (h, w, 3) float32 in [0, 1], scaled as image_io scales."""
    if raw.dtype == np.uint8:
        values = raw.astype(np.float32) / 255.0
    elif raw.dtype == np.uint16:
        values = raw.astype(np.float32) / 65535.0
    elif raw.dtype == bool:
        values = raw.astype(np.float32)
    elif np.issubdtype(raw.dtype, np.floating):
        values = np.clip(raw.astype(np.float32), 0.0, 1.0)
    else:
        info = np.iinfo(raw.dtype)
        values = np.clip(raw.astype(np.float32), 0, info.max) / float(info.max)
    if values.shape[2] in (1, 2):  # gray (+ alpha)
        return np.repeat(values[..., :1], 3, axis=2)
    return np.ascontiguousarray(values[..., :3])


def is_tiff(path: str | Path) -> bool:
    return Path(path).suffix.lower() in TIFF_SUFFIXES
