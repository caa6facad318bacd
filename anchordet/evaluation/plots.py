"""Precision-recall curves as PNG files, one per class and one overall.

COCO (:class:`CocoMetrics`): precision at the 101 recall thresholds (area all, 100 detections)
for IoU 0.50, 0.75 and the mean over 0.50:0.95, i.e. the curves whose means are AP50, AP75
and AP; the overall plot averages them over the classes that have ground truth.
VOC (:class:`VocMetrics`): the raw precision/recall points of each class and their monotone
envelope (what the area AP integrates); the overall plot overlays every class's envelope.
Classes without ground truth have no curve and get no file.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from anchordet.evaluation.coco import CocoMetrics
from anchordet.evaluation.voc import VocMetrics
from anchordet.files import atomic_write


def plot_pr_curves(metrics: CocoMetrics | VocMetrics, out_dir: str | Path) -> list[Path]:
    """Write ``pr_overall.png`` and ``pr_<index>_<class>.png`` files; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(metrics, CocoMetrics):
        return _plot_coco(metrics, out)
    if isinstance(metrics, VocMetrics):
        return _plot_voc(metrics, out)
    raise TypeError(f"expected CocoMetrics or VocMetrics, got {type(metrics).__name__}")


def _file_name(index: int, name: str) -> str:
    return f"pr_{index:03d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:60]}.png"


def _save(fig: Figure, path: Path, title: str) -> Path:
    ax = fig.axes[0]
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
    return path


def _coco_curves(precision: np.ndarray) -> dict[str, np.ndarray]:
    """precision (T, R) -> {label: (R,)} for IoU .50, .75 and the mean over .50:.95."""
    return {"IoU 0.50": precision[0], "IoU 0.75": precision[5], "IoU 0.50:0.95": precision.mean(axis=0)}


def _plot_coco(m: CocoMetrics, out: Path) -> list[Path]:
    p = m.precision[:, :, :, 0, -1]  # (T, R, K): area all, 100 detections
    has_gt = (p > -1).all(axis=(0, 1))
    paths = []
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    if has_gt.any():
        for label, curve in _coco_curves(p[:, :, has_gt].mean(axis=2)).items():
            ax.plot(m.recall_thresholds, curve, label=label)
    paths.append(_save(fig, out / "pr_overall.png", f"all classes: AP {m.stats['AP']:.3f}  AP50 {m.stats['AP50']:.3f}"))
    for k, name in enumerate(m.category_names):
        if not has_gt[k]:
            continue
        fig = Figure(figsize=(5, 4))
        ax = fig.add_subplot()
        for label, curve in _coco_curves(p[:, :, k]).items():
            ax.plot(m.recall_thresholds, curve, label=label)
        paths.append(_save(fig, out / _file_name(k, name), f"{name}: AP {m.per_class[name]:.3f}"))
    return paths


def _envelope(recall: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mrec = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    return mrec, np.maximum.accumulate(mpre[::-1])[::-1]


def _plot_voc(m: VocMetrics, out: Path) -> list[Path]:
    kind = "VOC07 11-point" if m.use_07_metric else "VOC area"
    overall = Figure(figsize=(6, 4.5))
    ax_all = overall.add_subplot()
    paths = []
    for k, (name, ap) in enumerate(m.per_class.items()):
        if ap < 0:
            continue
        rec, prec = m.recall[name], m.precision[name]
        mrec, mpre = _envelope(rec, prec)
        ax_all.step(mrec, mpre, where="pre", label=f"{name} {ap:.3f}")
        fig = Figure(figsize=(5, 4))
        ax = fig.add_subplot()
        ax.plot(rec, prec, ".", markersize=3, label="detections")
        ax.step(mrec, mpre, where="pre", label="envelope")
        paths.append(_save(fig, out / _file_name(k, name), f"{name}: {kind} AP {ap:.3f}"))
    paths.insert(0, _save(overall, out / "pr_overall.png", f"{kind} mAP {m.mAP:.3f}"))
    return paths
