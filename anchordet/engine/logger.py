"""Run logging: ``metrics.jsonl`` (one JSON object a line), TensorBoard events, curve pictures.

Only the main process writes; other ranks get a logger that does nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

from anchordet.files import atomic_write, atomic_write_text


class RunLogger:
    """``resumed_at``: the iteration of the checkpoint a resumed run started from. Records after
    it (written before a ``kill -9``, since the checkpoint) are dropped from metrics.jsonl, and
    TensorBoard is told to hide its events after it (``purge_step``): the resumed run logs those
    iterations again."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, resumed_at: int | None = None):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self._writer = None
        self._purge_step = None if resumed_at is None else resumed_at + 1
        if enabled:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if resumed_at is not None:
                drop_records_after(self.metrics_path, resumed_at)
            self._open()

    def _open(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self._purge_step)
            self._purge_step = None  # once: a writer reopened later (after close) purges nothing more
        return self._writer

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def log(self, kind: str, step: int, values: dict) -> None:
        """Append ``{"type": kind, "iteration": step, **values}`` and mirror scalars to TensorBoard."""
        if not self.enabled:
            return
        record = {"type": kind, "iteration": step, **values}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("epoch",):
                self._open().add_scalar(f"{kind}/{key}", value, step)
        self._open().flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def drop_records_after(path: str | Path, iteration: int) -> None:
    """Rewrite metrics.jsonl (atomically) without the records after ``iteration`` and without a
    line cut short by a kill mid-write; untouched when there is nothing to drop."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if _iteration_of(line) is not None and _iteration_of(line) <= iteration]
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(line + "\n" for line in kept))


def _iteration_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["iteration"])
    except (ValueError, KeyError, TypeError):
        return None


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(metrics_path: str | Path, out_path: str | Path) -> Path | None:
    """Training loss (left) and evaluation AP / mAP (right) against the iteration, as a PNG."""
    records = read_metrics(metrics_path)
    train = [r for r in records if r["type"] == "train"]
    evals = [r for r in records if r["type"] == "eval"]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, ap_axis) = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        loss_axis.plot([r["iteration"] for r in train], [r["loss"] for r in train], label="total")
        for key in sorted(k for k in train[-1] if k.startswith("loss_")):
            loss_axis.plot([r["iteration"] for r in train], [r.get(key, float("nan")) for r in train], label=key,
                           alpha=0.7)
        loss_axis.set_yscale("log")
        loss_axis.legend()
    loss_axis.set(title="training loss", xlabel="iteration")
    for key in ("AP", "AP50", "mAP"):
        points = [(r["iteration"], r[key]) for r in evals if key in r]
        if points:
            ap_axis.plot(*zip(*points), marker="o", label=key)
    ap_axis.set(title="evaluation", xlabel="iteration", ylim=(0, 1))
    if evals:
        ap_axis.legend()
    figure.tight_layout()
    atomic_write(out_path, lambda f: figure.savefig(f, format="png", dpi=100))
    plt.close(figure)
    return Path(out_path)
