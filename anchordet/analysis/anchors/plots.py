"""Pictures of an anchor analysis (PNG, matplotlib's Agg backend: no display needed).

- ``plot_best_iou``: histogram of every gt box's best IoU with any anchor, with the matcher's
  thresholds drawn; several reports (current / suggested anchors) overlaid.
- ``plot_box_shapes``: gt box width against height (log-log), with each anchor shape of each
  level drawn on top: a box far from every anchor shape cannot reach a high IoU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from anchordet.files import atomic_write
from anchordet.matching.iou_matcher import IoUMatcher


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_best_iou(reports: Mapping[str, object], out_dir: str | Path, matcher: IoUMatcher, bins: int = 40) -> Path:
    """reports: name -> ``CoverageReport``. Writes and returns ``out_dir/best_iou.png``."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, report in reports.items():
        ax.hist(report.best_iou.numpy(), bins=bins, range=(0, 1), histtype="step", linewidth=1.5,
                label=f"{name} ({len(report.best_iou)} boxes)")
    ax.axvline(matcher.high_threshold, color="green", linestyle="--", label=f"positive >= {matcher.high_threshold:g}")
    if matcher.low_threshold < matcher.high_threshold:
        ax.axvline(matcher.low_threshold, color="red", linestyle=":", label=f"negative < {matcher.low_threshold:g}")
    ax.set_xlabel("best IoU of a gt box with any anchor")
    ax.set_ylabel("gt boxes")
    ax.legend()
    fig.tight_layout()
    path = out / "best_iou.png"
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return path


def anchor_shapes(generator) -> list[torch.Tensor]:
    """Per level, (S, 2) (width, height) of one location's anchors (grid or SSD generator)."""
    if hasattr(generator, "box_sizes"):  # SSD default boxes
        return [generator.box_sizes(level).float() for level in range(generator.num_levels)]
    shapes = []
    for level in range(generator.num_levels):
        base = generator.base_anchors(level)
        shapes.append(base[:, 2:] - base[:, :2])
    return shapes


def plot_box_shapes(report, generators: Mapping[str, object], out_dir: str | Path, max_points: int = 20000) -> Path:
    """Gt (width, height) scatter, coloured by covered or not, with the anchor shapes of each
    generator (name -> generator) marked. Writes and returns ``out_dir/box_shapes.png``."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wh = (report.boxes[:, 2:] - report.boxes[:, :2]).clamp(min=0.5)
    covered = report.num_confident > 0
    if len(wh) > max_points:  # a reproducible subsample keeps the file small
        keep = torch.randperm(len(wh), generator=torch.Generator().manual_seed(0))[:max_points]
        wh, covered = wh[keep], covered[keep]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(wh[covered, 0], wh[covered, 1], s=3, alpha=0.3, color="tab:blue", label="gt, positive at IoU >= threshold")
    ax.scatter(wh[~covered, 0], wh[~covered, 1], s=3, alpha=0.5, color="tab:red", label="gt, not")
    for (name, generator), marker in zip(generators.items(), ("x", "+", "1")):
        shapes = torch.cat(anchor_shapes(generator))
        ax.scatter(shapes[:, 0], shapes[:, 1], marker=marker, s=60, color="black" if marker == "x" else "tab:green",
                   label=f"anchors, {name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width (input pixels)")
    ax.set_ylabel("height (input pixels)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "box_shapes.png"
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return path
