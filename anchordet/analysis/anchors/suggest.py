"""Suggest anchor sizes and ratios that fit a dataset, keeping the anchors per location fixed.

The search changes only what the head does not see: how large the anchors are and their aspect
ratios, never how many there are per location (the head's output channels stay valid). Per
detector the knobs are the factory's own arguments, so the result prints as ``--set`` overrides:

- RetinaNet: ``anchor_base_sizes`` (all levels times one factor), ``anchor_octave_scales``
  (S scales 2^(i * spread / S)), ``anchor_aspect_ratios`` (R ratios, height / width).
- SSD: ``min_sizes`` and ``max_sizes`` (times one factor), ``aspect_ratios`` (per level the same
  count, 1 + step * i).
- Faster R-CNN's RPN: ``anchor_sizes`` (times one factor), ``anchor_aspect_ratios``.

Objective: the share of gt boxes that are *learnable*, i.e. get a positive anchor at IoU >= the
matcher's positive threshold (a low-quality-only match does not count), then the mean best IoU.
Coordinate search on a sample of images: ratios, then sizes, then ratios again.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch

from anchordet.analysis.anchors.coverage import AnnotatedImage, CoverageReport, analyze_coverage
from anchordet.analysis.anchors.model_anchors import DetectorAnchors
from anchordet.anchors.grid import GridAnchorGenerator

SIZE_FACTORS = tuple(2 ** (k / 4) for k in range(-16, 7))  # x1/16 .. x2.8 in quarter octaves
RATIO_SPREADS = (1.25, 1.5, 2.0, 2.5, 3.0, 4.0)  # ratio between neighbouring aspect ratios
OCTAVE_SPREADS = (0.5, 1.0, 1.5)  # octaves covered by the scales of one level (RetinaNet: 1)
SSD_RATIO_STEPS = (0.25, 0.5, 1.0, 1.5, 2.0)  # SSD ratios 1 + step * i (the paper: step 1 -> 2, 3)


@dataclass(frozen=True)
class AnchorChoice:
    """One point of the search: sizes times ``factor``; ``spread`` of the octave scales
    (RetinaNet) or None; ``ratios``: grid detectors the R ratios, SSD the ratio step."""

    factor: float = 1.0
    spread: float | None = None
    ratios: tuple[float, ...] | float | None = None


def _round(values, digits: int = 2) -> list:
    return [round(float(v), digits) for v in values]


def make_generator(anchors: DetectorAnchors, choice: AnchorChoice):
    """The detector's generator with ``choice`` applied (values rounded as printed)."""
    gen = anchors.generator
    if anchors.kind == "ssd":
        ratios = gen.aspect_ratios if choice.ratios is None else tuple(
            tuple(_round(1 + choice.ratios * (i + 1) for i in range(len(r)))) for r in gen.aspect_ratios)
        return dataclasses.replace(gen, min_sizes=tuple(_round(s * choice.factor for s in gen.min_sizes)),
                                   max_sizes=tuple(_round(s * choice.factor for s in gen.max_sizes)),
                                   aspect_ratios=ratios)
    ratios = gen.aspect_ratios if choice.ratios is None else tuple(_round(choice.ratios, 3))
    first = gen.sizes_per_level[0]
    relative = [s / first[0] for s in first]  # octave scales of the current generator
    if choice.spread is not None:
        relative = [2 ** (i * choice.spread / len(first)) for i in range(len(first))]
    relative = _round(relative, 4)
    bases = _round(level[0] * choice.factor for level in gen.sizes_per_level)
    sizes = tuple(tuple(b * r for r in relative) for b in bases)
    return GridAnchorGenerator(sizes, ratios, gen.strides, gen.offset, gen.round_base)


def overrides(anchors: DetectorAnchors, generator) -> list[str]:
    """The ``--set model.X=...`` strings that make the factory build ``generator``."""
    def fmt(values) -> str:
        return "[" + ", ".join(f"{v:g}" if not isinstance(v, (list, tuple)) else fmt(v) for v in values) + "]"

    if anchors.kind == "ssd":
        return [f"model.min_sizes={fmt(generator.min_sizes)}", f"model.max_sizes={fmt(generator.max_sizes)}",
                f"model.aspect_ratios={fmt(generator.aspect_ratios)}"]
    if anchors.kind == "rpn":
        return [f"model.anchor_sizes={fmt(generator.sizes_per_level[0])}",
                f"model.anchor_aspect_ratios={fmt(generator.aspect_ratios)}"]
    first = generator.sizes_per_level[0]
    scales = _round((s / first[0] for s in first), 4)
    return [f"model.anchor_base_sizes={fmt(level[0] for level in generator.sizes_per_level)}",
            f"model.anchor_octave_scales={fmt(scales)}", f"model.anchor_aspect_ratios={fmt(generator.aspect_ratios)}"]


def score(report: CoverageReport) -> tuple[float, float]:
    """(share of boxes with a positive at IoU >= the threshold, mean best IoU)."""
    summary = report.summary()
    return (summary.get("confident", 0.0), summary.get("best_iou_mean", 0.0))


def _ratio_candidates(images: Sequence[AnnotatedImage], count: int) -> list[tuple[float, ...]]:
    """R ratios (height / width) geometric around the boxes' median ratio."""
    boxes = torch.cat([i.boxes.reshape(-1, 4) for i in images]) if images else torch.zeros(0, 4)
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
    median = float((wh[:, 1] / wh[:, 0]).median()) if len(wh) else 1.0
    sets = []
    for spread in RATIO_SPREADS if count > 1 else (1.0,):
        sets.append(tuple(median * spread ** (i - (count - 1) / 2) for i in range(count)))
        sets.append(tuple(spread ** (i - (count - 1) / 2) for i in range(count)))  # centred on square
    return sets


@dataclass
class Suggestion:
    """The best generator found, its overrides and its score against the current one's."""

    generator: object
    overrides: list[str]
    score: tuple[float, float]
    current_score: tuple[float, float]
    evaluated: int


def suggest_anchors(anchors: DetectorAnchors, images: Sequence[AnnotatedImage], rounds: int = 2) -> Suggestion:
    """Coordinate search (module docstring) on ``images`` (a sample: each step analyses them all)."""
    images = list(images)
    cache: dict = {}

    def evaluate(choice: AnchorChoice) -> tuple[float, float]:
        generator = make_generator(anchors, choice)
        key = repr(generator)
        if key not in cache:
            cache[key] = score(analyze_coverage(images, anchors.with_generator(generator).at))
        return cache[key]

    current = score(analyze_coverage(images, anchors.at))
    best = AnchorChoice()
    if anchors.kind == "ssd":
        ratio_options = list(SSD_RATIO_STEPS)
    else:
        ratio_options = _ratio_candidates(images, len(anchors.generator.aspect_ratios))
    for _ in range(rounds):
        best = max((dataclasses.replace(best, ratios=r) for r in [best.ratios, *ratio_options]), key=evaluate)
        best = max((dataclasses.replace(best, factor=f) for f in [best.factor, *SIZE_FACTORS]), key=evaluate)
        if anchors.kind == "retinanet":
            best = max((dataclasses.replace(best, spread=s) for s in [best.spread, *OCTAVE_SPREADS]), key=evaluate)
    generator = make_generator(anchors, best)
    found = evaluate(best)
    if found <= current:  # nothing better: keep the model's own anchors
        generator, found = anchors.generator, current
    return Suggestion(generator, overrides(anchors, generator), found, current, len(cache))


def sample_images(images: Sequence[AnnotatedImage], count: int, seed: int = 0) -> list[AnnotatedImage]:
    """``count`` images drawn without replacement (all if fewer), reproducibly."""
    if len(images) <= count:
        return list(images)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
    return [images[i] for i in sorted(order.tolist())]


__all__ = ["AnchorChoice", "Suggestion", "make_generator", "overrides", "sample_images", "score", "suggest_anchors"]
