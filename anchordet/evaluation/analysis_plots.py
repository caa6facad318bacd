"""The files of ``--analyze``: the JSON of ``evaluation.analysis``'s results and its PNGs (F1 /
precision / recall against the score threshold, the confusion matrix with its counts).
matplotlib's object API (no pyplot state), files written atomically."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from anchordet.evaluation.analysis import ConfusionMatrix, ErrorAnalysis, ThresholdCurves, analyze
from anchordet.evaluation.results import DetectionStore, GroundTruth
from anchordet.files import atomic_write_bytes, atomic_write_text

# Above this many classes a count per cell is unreadable: the cells keep their colour and the
# counts are in confusion.json.
MAX_CLASSES_WITH_COUNTS = 40


def _save(fig: Figure, path: Path, dpi: int = 80) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_threshold_curves(c: ThresholdCurves, out: Path) -> list[Path]:
    """``f1_overall.png`` (precision, recall, F1 over all classes, best F1 marked) and
    ``prf_per_class.png`` (precision, recall and F1 of each class with ground truth, three panels)."""
    best = c.best()
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot(c.thresholds, c.overall_precision, label="precision")
    ax.plot(c.thresholds, c.overall_recall, label="recall")
    ax.plot(c.thresholds, c.overall_f1, label="F1", linewidth=2)
    ax.axvline(best["threshold"], color="gray", linestyle="--", linewidth=1)
    ax.set(xlabel="score threshold (score >=)", ylim=(0, 1.02),
           title=f"all classes: best F1 {best['f1']:.3f} at {best['threshold']:.2f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    paths = [_save(fig, out / "f1_overall.png")]
    fig = Figure(figsize=(13, 4))
    with_gt = np.flatnonzero(c.num_gt > 0)
    panels = (("precision", c.precision, c.overall_precision), ("recall", c.recall, c.overall_recall),
              ("F1", c.f1, c.overall_f1))
    for i, (name, per_class, overall) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for k in with_gt:
            ax.plot(c.thresholds, per_class[k], linewidth=0.8, alpha=0.6,
                    label=c.category_names[k] if len(with_gt) <= 12 else None)
        ax.plot(c.thresholds, overall, color="black", linewidth=2, label="all classes")
        ax.set(xlabel="score threshold (score >=)", ylim=(0, 1.02), title=f"{name} per class")
        ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    paths.append(_save(fig, out / "prf_per_class.png"))
    return paths


def plot_confusion(c: ConfusionMatrix, path: Path) -> Path:
    """The matrix on a log colour scale, with the count in every non-zero cell (up to
    ``MAX_CLASSES_WITH_COUNTS`` classes)."""
    n = len(c.labels)
    size = min(4 + 0.35 * n, 14)  # 40 classes with counts fit; more are colour only
    fig = Figure(figsize=(size, size * 0.9))
    ax = fig.add_subplot()
    matrix = c.matrix.astype(np.float64)
    image = ax.imshow(np.where(matrix > 0, matrix, np.nan), cmap="Blues", interpolation="nearest",
                      norm=LogNorm(vmin=1, vmax=max(matrix.max(), 1)))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    rows, cols = c.labels[:-1] + ["background"], c.labels[:-1] + ["missed"]
    ticks = np.arange(n)
    font = max(4, min(9, 300 // n))
    ax.set_xticks(ticks, cols, rotation=90, fontsize=font)
    ax.set_yticks(ticks, rows, fontsize=font)
    ax.set(xlabel="predicted", ylabel="ground truth",
           title=f"confusion at score >= {c.score_threshold:.2f}, IoU >= 0.5")
    if n - 1 <= MAX_CLASSES_WITH_COUNTS:
        high = np.nanmax(matrix) if matrix.any() else 1
        for i, j in zip(*np.nonzero(c.matrix)):
            ax.text(j, i, str(c.matrix[i, j]), ha="center", va="center", fontsize=font,
                    color="white" if matrix[i, j] > high ** 0.6 else "black")
    # margins for the tick labels, from their length: tight_layout would cost another full draw
    def inches(labels):
        return max(len(s) for s in labels) * font * 0.6 / 72 + 0.6

    fig.subplots_adjust(left=min(0.45, inches(rows) / size), bottom=min(0.45, inches(cols) / (size * 0.9)),
                        right=0.9, top=0.94)
    return _save(fig, path, dpi=100)


def write_analysis(analysis: ErrorAnalysis, out_dir: str | Path) -> list[Path]:
    """The JSON files and PNGs of the module docstring (each written atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [atomic_write_text(out / "tide.json", json.dumps(analysis.tide.to_dict(), indent=1)),
             atomic_write_text(out / "f1.json", json.dumps(analysis.curves.to_dict())),
             atomic_write_text(out / "confusion.json", json.dumps(analysis.confusion.to_dict()))]
    paths += plot_threshold_curves(analysis.curves, out)
    paths.append(plot_confusion(analysis.confusion, out / "confusion.png"))
    return paths


def analyze_files(gt: dict | str | Path, results: list[dict], out_dir: str | Path,
                  score_threshold: float | None = None) -> tuple[ErrorAnalysis, list[Path]]:
    """``analyze`` a COCO ground-truth dict / file and a COCO results list; write its files.

    Raises ValueError naming the results entry whose image or category id the ground truth
    does not have.
    """
    ground_truth = GroundTruth.load(gt)
    store = DetectionStore(ground_truth)
    store.add_results(results)
    analysis = analyze(ground_truth, store.arrays(), score_threshold)
    return analysis, write_analysis(analysis, out_dir)
