"""Reading image files with PIL into (3, H, W) float tensors in [0, 1] (torch imported only there).

What a detection dataset throws at a loader, handled here once:
- EXIF orientation: phone photos store landscape pixels plus an "Orientation" tag; annotation
  tools draw boxes on the rotated picture, so the tag is applied (``ImageOps.exif_transpose``).
- modes: grayscale (L, LA), palette (P, PA), RGBA, CMYK, 1-bit and 16-bit (I;16, I) images all
  become RGB. Alpha is dropped (what torchvision and ultralytics do); 16-bit values are scaled
  by 65535, not clipped at 255 as ``Image.convert`` would.
- a limit on decompressed pixels (``MAX_PIXELS``), checked on the header before decoding,
  so a decompression bomb is refused with a clear error instead of exhausting memory.
- a missing, truncated or unreadable file raises an error naming the file.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from anchordet.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor

from anchordet.errors import UserError

# 8192 x 8192 = 67 M pixels (805 MB as a float32 RGB tensor): below PIL's own
# decompression-bomb warning (89.5 M), so ours fires first and names the file and the limit.
MAX_PIXELS = 8192 * 8192
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112


class ImageReadError(UserError):
    """A file that exists but cannot be decoded (truncated, corrupt, too large)."""


def _open(path: Path, max_pixels: int) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    # PIL warns (DecompressionBombWarning) inside open() above its limit (89.5 M pixels), before
    # our check could say it; catching the warning would reset every warning's "shown once"
    # record (warnings.catch_warnings), so PIL's check is off while the header is read and is
    # applied after ours (no threads read images in anchordet; the window is one header read).
    pil_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        image = Image.open(path)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    pixels = image.width * image.height
    if pixels > max_pixels:
        image.close()
        raise ImageReadError(f"{path}: {image.width}x{image.height} = {pixels} pixels "
                             f"exceeds the limit of {max_pixels} decompressed pixels")
    if pil_limit is not None and pixels > pil_limit:  # a caller's limit above PIL's: PIL's rule stands
        if pixels > 2 * pil_limit:
            image.close()
            raise ImageReadError(f"{path}: too many decompressed pixels ({pixels}, PIL's limit is {2 * pil_limit})")
        warnings.warn(f"{path}: {pixels} pixels exceed PIL's limit of {pil_limit}, could be a decompression bomb",
                      Image.DecompressionBombWarning, stacklevel=3)
    return image


def image_size(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) after EXIF orientation, read from the header only (no decoding)."""
    with _open(Path(path), max_pixels) as image:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        width, height = image.size
    return (width, height) if orientation in _TRANSPOSED_ORIENTATIONS else (height, width)


def raw_size(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) as stored, ignoring EXIF orientation (to explain a size mismatch)."""
    with _open(Path(path), max_pixels) as image:
        return image.height, image.width


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Tensor:
    """Decode an image file.

    Returns:
        (3, H, W) float32 in [0, 1], RGB, with EXIF orientation applied.
    Raises:
        FileNotFoundError: no such file.
        ImageReadError (a UserError, so a ValueError): not an image, truncated, or more than ``max_pixels``.
    """
    import torch  # here, not at the top: check-data decodes images without torch (decode_image)

    return torch.from_numpy(np.ascontiguousarray(decode_image(path, max_pixels).transpose(2, 0, 1))).float()


def decode_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``load_image`` without torch: (H, W, 3) float64 RGB in [0, 1], EXIF orientation applied.

    Raises as ``load_image``.
    """
    path = Path(path)
    with _open(path, max_pixels) as image:
        try:
            image.load()  # PIL decodes lazily: truncation shows up here
            oriented = ImageOps.exif_transpose(image)
            return _to_array(oriented)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # PIL raises the first three for broken files, the last for a frame larger than the header says
            raise ImageReadError(f"{path}: cannot decode the image, truncated or corrupt ({exc})") from exc


def _to_array(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> (H, W, 3) float64 RGB in [0, 1]."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit PNG/TIFF grayscale (PIL opens some as "I", 32-bit ints holding 0..65535).
        array = np.asarray(image, dtype=np.float64).clip(0, 65535) / 65535.0
        array = np.repeat(array[..., None], 3, axis=2)
    elif image.mode == "F":
        array = np.repeat(np.asarray(image, dtype=np.float64).clip(0, 1)[..., None], 3, axis=2)
    else:
        array = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    return array


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted, by extension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def as_image_tensor(item: Any, name: str = "image") -> Tensor:
    """A path, PIL image, (H, W, 3) uint8 array or (3, H, W) tensor -> (3, H, W) float32 in [0, 1].

    Raises:
        UserError naming ``name`` for a file that cannot be decoded or an array of another shape.
    """
    import torch

    if isinstance(item, (str, Path)):
        try:
            return load_image(item)
        except ImageReadError as exc:
            raise UserError(str(exc)) from exc
    if isinstance(item, torch.Tensor):
        if item.ndim != 3 or item.shape[0] != 3:
            raise UserError(f"{name}: expected a (3, H, W) tensor, got shape {tuple(item.shape)}")
        if item.dtype == torch.uint8:
            return item.float() / 255
        if not item.is_floating_point():
            raise UserError(f"{name}: expected a float tensor in [0, 1] or uint8, got {item.dtype}")
        return item.float()
    if isinstance(item, Image.Image):
        item = np.asarray(item.convert("RGB"))
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise UserError(f"{name}: expected an (H, W, 3) uint8 RGB array, got {item.dtype} {item.shape}")
        return torch.from_numpy(np.array(item, copy=True)).permute(2, 0, 1).float() / 255  # PIL's arrays are read-only
    raise UserError(f"{name}: cannot read a {type(item).__name__} as an image (give a path, PIL image, "
                    f"(H, W, 3) uint8 array or (3, H, W) tensor)")
