"""``Sample`` (one dataset item) and ``collate`` (a list of samples -> a ``Batch``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import Tensor

from anchordet.structures.image_batch import ImageBatch
from anchordet.structures.targets import Targets


@dataclass
class Sample:
    """One image after the dataset's transforms.

    Attributes:
        image: (3, H, W) float32 in [0, 1].
        targets: boxes in this image's pixel frame (after transforms).
        image_id: the dataset's id of the image (COCO ``id``; index for generated data).
        orig_size: (height, width) of the image before any transform (the file's size).
        file_name: where it came from ("" for generated images).
    """

    image: Tensor
    targets: Targets
    image_id: int
    orig_size: tuple[int, int]
    file_name: str = ""


@dataclass
class Batch:
    """A collated batch: ``images`` padded (sizes kept), and per-image lists."""

    images: ImageBatch
    targets: list[Targets]
    image_ids: list[int]
    orig_sizes: list[tuple[int, int]]
    file_names: list[str]

    def __len__(self) -> int:
        return len(self.image_ids)

    def pin_memory(self) -> "Batch":
        """The batch with its image tensor in page-locked memory (the DataLoader calls this with
        ``pin_memory=True``), so that its copy to a GPU can be asynchronous (``non_blocking``)."""
        images = ImageBatch(self.images.tensor.pin_memory(), list(self.images.image_sizes))
        return Batch(images, self.targets, self.image_ids, self.orig_sizes, self.file_names)


def collate(samples: Sequence[Sample], size_divisible: int = 32) -> Batch:
    """Pad images into one ``ImageBatch``; models re-pad if they need a larger multiple."""
    return Batch(
        ImageBatch.from_images([s.image for s in samples], size_divisible),
        [s.targets for s in samples],
        [s.image_id for s in samples],
        [s.orig_size for s in samples],
        [s.file_name for s in samples],
    )
