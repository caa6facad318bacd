"""Merging the detections of overlapping tiles: greedy NMS and SAHI-style greedy NMM.

A box cut by a tile edge appears twice: whole in the tile that holds it (the tiles overlap) and
as a part in its neighbour. The part lies inside the whole box, so their IoU is only the part's
share of the area (0.3 for a third) while their IoS, intersection over the smaller box's area,
is 1: IoS is the default match metric (SAHI's too).

Only boxes of DIFFERENT groups (tiles) are compared: the model's own NMS has already dealt with
the boxes of one tile, and merging inside a tile would make a one-tile image differ from its
untiled prediction. Boxes of different classes never match unless ``class_agnostic``.

``tile_pairs`` lists the candidate pairs block by block (boxes of two tiles can only overlap
where the two windows do), so memory grows with the boxes of neighbouring tiles, not with the
square of all boxes of a 20000 px image. ``greedy_nms`` and ``greedy_nmm`` then walk the boxes
in score order. ``merge_reference`` is the O(N^2) plain-Python version the tests compare against.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

METRICS = ("ios", "iou")
METHODS = ("nms", "nmm")


def match_matrix(a: Tensor, b: Tensor, metric: str) -> Tensor:
    """(N, 4), (M, 4) xyxy -> (N, M) IoU or IoS (intersection over the smaller box's area).
    A pair with no intersection (or a zero-area box) scores 0."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    denom = torch.minimum(area_a, area_b) if metric == "ios" else area_a + area_b - inter
    return torch.where(denom > 0, inter / denom.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def tile_pairs(boxes: Tensor, labels: Tensor, groups: Tensor, neighbours: Sequence[tuple[int, int]],
               metric: str, threshold: float, class_agnostic: bool = False) -> tuple[Tensor, Tensor]:
    """Pairs (i, j) of boxes from two different groups whose ``metric`` is > ``threshold``.

    Args:
        boxes: (N, 4) xyxy float. labels: (N,) int64. groups: (N,) int64 tile index of each box.
        neighbours: the (g, h) group pairs, g < h, whose boxes may overlap (overlapping windows).
    Returns:
        two (P,) int64 tensors, each pair once, in both orders (i, j) and (j, i).
    """
    members = {int(g): torch.nonzero(groups == g).flatten() for g in torch.unique(groups).tolist()}
    first, second = [], []
    for g, h in neighbours:
        a, b = members.get(g), members.get(h)
        if a is None or b is None or not len(a) or not len(b):
            continue
        hit = match_matrix(boxes[a].double(), boxes[b].double(), metric) > threshold
        if not class_agnostic:
            hit &= labels[a][:, None] == labels[b][None, :]
        i, j = torch.nonzero(hit, as_tuple=True)
        first += [a[i], b[j]]
        second += [b[j], a[i]]
    if not first:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    return torch.cat(first), torch.cat(second)


def _order_and_adjacency(scores: Tensor, pairs: tuple[Tensor, Tensor]) -> tuple[list[int], list[list[int]]]:
    """Box indices by decreasing score (stable) and each box's matched boxes, as Python lists."""
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    adjacency: list[list[int]] = [[] for _ in range(len(scores))]
    for i, j in zip(pairs[0].tolist(), pairs[1].tolist()):
        adjacency[i].append(j)
    return order, adjacency


def greedy_nms(scores: Tensor, pairs: tuple[Tensor, Tensor]) -> Tensor:
    """Keep the best box, drop every box it matches, go on: (K,) int64 kept indices by decreasing score."""
    order, adjacency = _order_and_adjacency(scores, pairs)
    removed = [False] * len(order)
    keep = []
    for i in order:
        if removed[i]:
            continue
        keep.append(i)
        for j in adjacency[i]:
            removed[j] = True
    return torch.tensor(keep, dtype=torch.int64)


def greedy_nmm(boxes: Tensor, scores: Tensor, pairs: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """SAHI's greedy non-maximum merging: the best remaining box absorbs every remaining box it
    matches (matched against the box as detected, not as grown); the merged box is their
    enclosing box, with the best box's score and label.

    Returns:
        keep: (K,) int64 indices of the boxes that absorbed the others, by decreasing score;
        merged: (K, 4) their enclosing boxes.
    """
    order, adjacency = _order_and_adjacency(scores, pairs)
    removed = [False] * len(order)
    keep, merged = [], []
    for i in order:
        if removed[i]:
            continue
        removed[i] = True
        group = [i] + [j for j in adjacency[i] if not removed[j]]
        for j in group:
            removed[j] = True
        keep.append(i)
        members = boxes[group]
        merged.append(torch.cat([members[:, :2].min(dim=0).values, members[:, 2:].max(dim=0).values]))
    if not keep:
        return torch.zeros(0, dtype=torch.int64), boxes.new_zeros((0, 4))
    return torch.tensor(keep, dtype=torch.int64), torch.stack(merged)


def merge_reference(boxes: Tensor, scores: Tensor, labels: Tensor, groups: Tensor, method: str, metric: str,
                    threshold: float, class_agnostic: bool = False) -> tuple[list[int], list[list[float]]]:
    """The slow reference of ``tile_pairs`` + ``greedy_nms`` / ``greedy_nmm``: every pair of boxes
    compared in plain Python floats. Returns (kept indices, their boxes after merging)."""
    def value(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
        denom = min(area_a, area_b) if metric == "ios" else area_a + area_b - inter
        return inter / denom if denom > 0 else 0.0

    box_list, label_list, group_list = boxes.tolist(), labels.tolist(), groups.tolist()
    order = sorted(range(len(box_list)), key=lambda k: -float(scores[k]))  # sorted() is stable

    def matches(i, j):
        return (group_list[i] != group_list[j] and (class_agnostic or label_list[i] == label_list[j])
                and value(box_list[i], box_list[j]) > threshold)

    removed, keep, out = set(), [], []
    for i in order:
        if i in removed:
            continue
        removed.add(i)
        group = [i] + [j for j in order if j not in removed and matches(i, j)] if method == "nmm" else [i]
        if method == "nms":
            removed.update(j for j in order if matches(i, j))
        removed.update(group)
        keep.append(i)
        out.append([min(box_list[j][0] for j in group), min(box_list[j][1] for j in group),
                    max(box_list[j][2] for j in group), max(box_list[j][3] for j in group)])
    return keep, out
