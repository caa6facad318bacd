"""Which images form each batch of a training epoch, as pure functions of (seed, epoch).

Every process computes the same global batches: the epoch's seeded order, cut into batches of
the global batch size, optionally within aspect-ratio groups (torchvision's GroupedBatchSampler
idea), and the per-batch shorter side of multi-scale training. Nothing depends on the process,
the worker or where a run was resumed, so DDP shards and exact resume stay exact (DEVELOPERS.md).
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

import torch


def epoch_order(size: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The epoch's order of the ``size`` items: a permutation seeded by (seed, epoch), or 0..size-1."""
    if not shuffle:
        return list(range(size))
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 7919 + epoch)).tolist()


def aspect_ratio_edges(num_groups: int) -> list[float]:
    """Width / height bin edges of ``num_groups`` groups, evenly spaced in log2 between 1/2 and 2
    (torchvision's ``create_aspect_ratio_groups`` spacing): 2 groups split at 1 (portrait vs
    landscape and square, as Detectron2), 4 at 0.71, 1 and 1.41; ratios beyond 1/2 or 2 join the
    end groups. 1 group: no edges."""
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}")
    return [2.0 ** (-1 + 2 * k / num_groups) for k in range(1, num_groups)]


def aspect_ratio_groups(ratios: Sequence[float], num_groups: int) -> list[int]:
    """Group of each item from its width / height ratio (``aspect_ratio_edges``)."""
    edges = aspect_ratio_edges(num_groups)
    return [bisect.bisect_right(edges, r) for r in ratios]


def group_batches(order: Sequence[int], groups: Sequence[int] | None, batch_size: int,
                  drop_last: bool = True) -> list[list[int]]:
    """Cut ``order`` into batches of ``batch_size`` whose items share a group.

    Walks ``order`` and puts each item into its group's open batch; a batch is emitted when it is
    full (so batches come in the order they fill, as in torchvision's GroupedBatchSampler). The
    items left in unfilled batches at the end are batched together in ``order`` (mixed groups):
    an epoch has ``len(order) // batch_size`` batches with or without groups, and with one
    group (or ``groups=None``) the batches are exactly the consecutive slices of ``order``.
    ``drop_last``: drop the final incomplete batch (else it is the last batch).
    """
    if groups is None:
        batches = [list(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    else:
        batches, open_batches = [], {}
        for item in order:
            batch = open_batches.setdefault(groups[item], [])
            batch.append(item)
            if len(batch) == batch_size:
                batches.append(batch)
                open_batches[groups[item]] = []
        position = {item: p for p, item in enumerate(order)}
        rest = sorted((i for batch in open_batches.values() for i in batch), key=position.__getitem__)
        batches += [rest[i:i + batch_size] for i in range(0, len(rest), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def batch_min_size(sizes: Sequence[int], seed: int, epoch: int, batch: int) -> int:
    """The shorter side of global batch ``batch`` of ``epoch`` for multi-scale training: a draw
    from ``sizes`` under a generator seeded by (seed, epoch, batch), apart from the stream that
    seeds each item's augmentation (``SeededItems``)."""
    if len(sizes) == 1:
        return int(sizes[0])
    key = ((seed * 1_000_003 + epoch) * 1_000_003 + batch) * 31 + 17
    generator = torch.Generator().manual_seed(key % (2 ** 63))
    return int(sizes[int(torch.randint(len(sizes), (), generator=generator))])


def padded_share(sizes: Sequence[tuple[int, int]], size_divisible: int = 32) -> float:
    """Share of a padded batch's pixels that are padding: images of ``sizes`` (h, w) padded to
    the largest height and width, rounded up to ``size_divisible`` (as ``ImageBatch`` pads)."""
    height = math.ceil(max(h for h, _ in sizes) / size_divisible) * size_divisible
    width = math.ceil(max(w for _, w in sizes) / size_divisible) * size_divisible
    return 1.0 - sum(h * w for h, w in sizes) / (len(sizes) * height * width)
