"""The training and evaluation data pipelines: datasets from the config (transforms from
``data.transforms.build_transforms``), seeded sampling and augmentation that make CPU runs
repeatable and resumable mid-epoch, DDP sharding."""
from __future__ import annotations

from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from anchordet.config.schema import DataConfig
from anchordet.data.collate import collate
from anchordet.engine.samplers import aspect_ratio_groups, batch_min_size, epoch_order, group_batches


def dataset_spec(data: DataConfig):
    from anchordet.data.spec import digits_spec, load_dataset_spec

    if data.dataset == "digits":
        return digits_spec(data.digits)
    return load_dataset_spec(data.dataset)


def build_dataset(data: DataConfig, split: str, train: bool | None = None):
    from anchordet.data.spec import build_dataset as build
    from anchordet.data.transforms import build_transforms

    train = (split == "train") if train is None else train
    dataset = build(dataset_spec(data), split=split, transforms=build_transforms(data, train),
                    skip_bad_annotations=data.skip_bad_annotations)
    return RepeatedImages(dataset, data.windows_per_image) if train and data.windows_per_image > 1 else dataset


class RepeatedImages(Dataset):
    """Each image of ``dataset`` ``times`` times per epoch (``data.windows_per_image``): item i is
    image i % len(dataset), so under ``SeededItems`` each repeat draws its own random window and
    augmentation. What makes one large annotated image a training set of many windows."""

    def __init__(self, dataset: Dataset, times: int):
        self.dataset, self.times = dataset, times

    def __len__(self) -> int:
        return len(self.dataset) * self.times

    def __getitem__(self, index: int):
        return self.dataset[index % len(self.dataset)]

    @property
    def transforms(self):
        return getattr(self.dataset, "transforms", None)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def aspect_ratios(self) -> list[float] | None:
        method = getattr(self.dataset, "aspect_ratios", None)
        return None if method is None else method() * self.times

    def __getattr__(self, name: str):  # class_names, num_classes, category_ids, coco_ground_truth, ...
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class SeededItems(Dataset):
    """Item ``i`` of epoch ``e`` is produced under the global torch RNG seeded by (seed, e, i),
    and the caller's RNG state is restored afterwards: the random augmentation of a sample does
    not depend on which worker loads it, on the batch order, or on where a run was resumed.

    Keys are indices, or ``(index, batch)`` pairs from an ``EpochSampler`` with
    ``batch_numbers=True``: then a multi-scale ``ResizeKeepRatio`` among the dataset's
    transforms resizes the item to the shorter side of global batch ``batch``
    (``samplers.batch_min_size``), so every image of a batch, on every process, has one size.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.resize = multi_scale_resize(getattr(dataset, "transforms", None))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, batch = key if isinstance(key, tuple) else (key, None)
        if self.resize is not None and batch is not None:
            self.resize.batch_min_size = batch_min_size(self.resize.min_sizes, self.seed, self.epoch, batch)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index) % (2 ** 63))
                return self.dataset[index]
        finally:
            if self.resize is not None:
                self.resize.batch_min_size = None

    def aspect_ratios(self) -> list[float] | None:
        """Width / height of every item before transforms (None: the dataset does not say)."""
        method = getattr(self.dataset, "aspect_ratios", None)
        return None if method is None else method()


def aspect_groups(data: DataConfig, dataset) -> list[int] | None:
    """The aspect-ratio group of every training image (``data.aspect_ratio_groups``), or None
    when batches are not grouped: one group, a fixed-size input, or a dataset without sizes."""
    if data.aspect_ratio_groups <= 1 or data.train_transform != "resize" or data.random_window:  # windows: ~square
        return None
    ratios = dataset.aspect_ratios() if hasattr(dataset, "aspect_ratios") else None
    return None if ratios is None else aspect_ratio_groups(ratios, data.aspect_ratio_groups)


def multi_scale_resize(transforms):
    """The ``ResizeKeepRatio`` with several shorter sides in a transform pipeline, or None."""
    from anchordet.data.transforms import Compose, ResizeKeepRatio

    steps = transforms.transforms if isinstance(transforms, Compose) else [transforms]
    found = [t for t in steps if isinstance(t, ResizeKeepRatio) and len(t.min_sizes) > 1]
    return found[0] if found else None


class EpochSampler(Sampler[int]):
    """This process's indices of one epoch: the order seeded by (seed, epoch) (or the identity),
    cut into global batches (within aspect-ratio ``groups`` when given: ``samplers.group_batches``),
    sharded by rank (rank r takes every world_size-th local batch slot), starting at global batch
    ``start_batch`` (for resuming mid-epoch) and ending after ``num_batches`` of them (None: all).

    ``batch_numbers``: yield ``(index, global batch number)`` pairs (for ``SeededItems``'s
    per-batch multi-scale sizes) instead of indices.
    """

    def __init__(self, size: int, global_batch: int, *, seed: int, epoch: int, shuffle: bool,
                 rank: int = 0, world_size: int = 1, start_batch: int = 0, drop_last: bool = True,
                 groups: list[int] | None = None, num_batches: int | None = None, batch_numbers: bool = False):
        order = epoch_order(size, seed, epoch, shuffle)
        batches = group_batches(order, groups, global_batch, drop_last)[:num_batches]
        local = global_batch // world_size
        self.indices = [(i, number) if batch_numbers else i
                        for number in range(start_batch, len(batches))
                        for i in batches[number][rank * local:(rank + 1) * local]]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_loader(dataset: Dataset, sampler: Sampler, local_batch: int, num_workers: int, size_divisible: int,
                seed: int, epoch: int, pin_memory: bool = False) -> DataLoader:
    """``pin_memory``: page-locked batches (for a CUDA device: asynchronous host-to-device copies)."""
    # The loader draws its workers' base seed from this generator, not from the global RNG, so the
    # model's RNG stream (dropout) is the same whether or not the run was resumed.
    generator = torch.Generator().manual_seed(seed * 104_729 + epoch)
    return DataLoader(dataset, batch_size=local_batch, sampler=sampler, num_workers=num_workers,
                      collate_fn=partial(collate, size_divisible=size_divisible), generator=generator,
                      persistent_workers=False, drop_last=False, pin_memory=pin_memory)
