"""``ImageBatch``: images of different sizes padded into one tensor, sizes kept.

Resizing is the data pipeline's job (docs/design.md contract 4); this only pads. Pixel values stay
in [0, 1]: each detector normalizes (mean/std) as the first step of ``forward``, so that an
exported network takes the same [0, 1] images as ``predict``. Padding is 0 (black) at the
right and bottom, so pixel coordinates are unchanged by padding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass
class ImageBatch:
    """Attributes:
    tensor: (B, 3, H, W) float, values in [0, 1], H and W multiples of the stride it was
        built with.
    image_sizes: B pairs ``(height, width)`` of each image before padding.
    """

    tensor: Tensor
    image_sizes: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.image_sizes)

    @property
    def padded_size(self) -> tuple[int, int]:
        return int(self.tensor.shape[-2]), int(self.tensor.shape[-1])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "ImageBatch":
        return ImageBatch(self.tensor.to(device, non_blocking=non_blocking), list(self.image_sizes))

    @staticmethod
    def from_images(images: "Tensor | Sequence[Tensor] | ImageBatch", size_divisible: int = 32) -> "ImageBatch":
        """Pad images to a common size that is a multiple of ``size_divisible``.

        Args:
            images: a (B, 3, H, W) float tensor, a sequence of (3, H_i, W_i) float tensors, or an
                ``ImageBatch`` (re-padded if its size is not a multiple of ``size_divisible``).
        Raises:
            ValueError: if an image is not a 3-channel floating-point tensor.
        """
        if isinstance(images, ImageBatch):
            if all(s % size_divisible == 0 for s in images.padded_size):
                return images
            images = [img[:, :h, :w] for img, (h, w) in zip(images.tensor, images.image_sizes)]
        images = _as_image_list(images)
        sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        max_h, max_w = padded_size((max(h for h, _ in sizes), max(w for _, w in sizes)), size_divisible)
        first = images[0]
        if all(s == (max_h, max_w) for s in sizes) and isinstance(images, Tensor):
            return ImageBatch(images, sizes)
        batch = first.new_zeros((len(images), 3, max_h, max_w))
        for img, out in zip(images, batch):
            out[:, : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageBatch(batch, sizes)


def padded_size(image_size: tuple[int, int], size_divisible: int) -> tuple[int, int]:
    """(height, width) rounded up to multiples of ``size_divisible``: what ``from_images`` pads to."""
    return tuple(int(math.ceil(side / size_divisible) * size_divisible) for side in image_size)


def _as_image_list(images: "Tensor | Sequence[Tensor]") -> "Tensor | list[Tensor]":
    """Validate images (docs/design.md contract 6) and return a 4-D tensor or a list of 3-D ones."""
    expected = "a float tensor (B, 3, H, W) or a list of float tensors (3, H, W) with values in [0, 1]"
    if isinstance(images, Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected {expected}; got a tensor of shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images: expected {expected}; got dtype {images.dtype} (divide uint8 by 255)")
        if images.shape[0] == 0:
            raise ValueError("images: the batch is empty")
        return images
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError(f"images: expected {expected}; got {type(images).__name__}")
    for i, img in enumerate(images):
        if not isinstance(img, Tensor) or img.ndim != 3 or img.shape[0] != 3:
            shape = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
            raise ValueError(f"image {i}: expected a float tensor (3, H, W); got {shape}")
        if not img.is_floating_point():
            raise ValueError(f"image {i}: expected a float tensor with values in [0, 1]; got dtype {img.dtype}")
        if img.shape[1] == 0 or img.shape[2] == 0:
            raise ValueError(f"image {i}: has an empty side {tuple(img.shape)}")
    return list(images)


# ImageNet statistics in [0, 1] units: the backbones' pretrained weights expect them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(B, 3, H, W) in [0, 1] -> (images - mean) / std, with mean and std of shape (3,)."""
    return (images - mean.view(1, -1, 1, 1).to(images.dtype)) / std.view(1, -1, 1, 1).to(images.dtype)
