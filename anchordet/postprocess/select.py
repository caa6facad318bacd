"""The tail every post-processing shares: NMS within groups, then the best of each image.

Written for a whole batch in tensor ops whose shapes follow the data, so that the same code runs
eagerly (``predict``) and traced (ONNX / TorchScript export): no Python loop over images, no
Python ``int`` taken from a tensor.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from anchordet.ops.nms import batched_nms


def image_sizes_tensor(image_sizes: Tensor | Sequence[tuple[int, int]], device) -> Tensor:
    """(B, 2) int64 (height, width) per image; a tensor (a traced graph's input) is kept as is."""
    if isinstance(image_sizes, Tensor):
        return image_sizes
    return torch.tensor([list(size) for size in image_sizes], dtype=torch.int64, device=device).reshape(-1, 2)


def rank_within_image(batch_index: Tensor, num_images: int) -> Tensor:
    """(M,) image of each item, in the items' order -> (M,) int64 position of each item among the
    items of its image (0 for the first). O(M * B) memory: a one-hot (M, B) count."""
    same_image = (batch_index[:, None] == torch.arange(num_images, device=batch_index.device)[None]).long()
    return (same_image.cumsum(0) * same_image).sum(1) - 1


def nms_best_per_image(boxes: Tensor, scores: Tensor, groups: Tensor, batch_index: Tensor, num_images: int,
                       nms_thresh: float, max_per_image: int) -> Tensor:
    """Indices of the boxes kept by NMS within each group, then of the best ``max_per_image``
    of each image, by decreasing score.

    Args:
        boxes: (N, 4) xyxy; scores (N,); groups (N,) int64 (image * classes + class, or the image
            alone); boxes of different groups never suppress each other.
        batch_index: (N,) int64 image of each box, 0..num_images-1 (groups never span images).
    Returns:
        (M,) int64 indices into the N boxes, M <= num_images * max_per_image.
    """
    kept = batched_nms(boxes, scores, groups, nms_thresh)  # by decreasing score
    return kept[rank_within_image(batch_index[kept], num_images) < max_per_image]
