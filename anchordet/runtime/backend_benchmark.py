"""Speed of one detector across inference backends and precisions (``anchordet benchmark`` with an
exported file): PyTorch eager fp32 / bf16, onnxruntime fp32 / int8, OpenVINO fp32 / bf16 / int8.

Every row times the same step, ``Backend.predict`` on one synthetic batch of already resized
images (the network and its post-processing: NMS in the graph or the library's own), so the rows
compare what ``anchordet.load(file).predict`` spends beyond reading and resizing. Rounds are
interleaved (A, B, C, A, B, C, ...: load from other processes hits every row alike); each row
reports the median, min and max call time and images/s = batch / median.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch


@dataclass
class BackendRow:
    """One backend x precision x batch size (times in seconds)."""

    label: str
    backend: str
    precision: str
    batch_size: int
    median_s: float
    min_s: float
    max_s: float
    images_per_s: float
    calls_s: list[float] = field(default_factory=list)


def time_interleaved(calls: Sequence[Callable[[], object]], repeats: int, warmup: int = 1) -> list[list[float]]:
    """Seconds of each of ``repeats`` rounds per call, the calls taking turns within a round,
    after ``warmup`` untimed calls each (the first call compiles / allocates)."""
    for call in calls:
        for _ in range(warmup):
            call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            times[i].append(time.perf_counter() - start)
    return times


def synthetic_images(batch_size: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """(B, 3, H, W) uniform noise in [0, 1]: speed does not depend on the pixels (the
    post-processing's candidate counts do a little; every row gets the same images)."""
    return torch.rand(batch_size, 3, *size, generator=torch.Generator().manual_seed(seed))


def benchmark_backends(backends: Sequence[tuple[str, object]], batch_sizes: Sequence[int], size: tuple[int, int],
                       repeats: int = 5, warmup: int = 1) -> list[BackendRow]:
    """Time ``backends`` ((label, ``anchordet.backends.Backend``) pairs) at each batch size on
    (H, W) = ``size`` images, interleaved over all rows."""
    jobs = []
    for batch_size in batch_sizes:
        images = synthetic_images(batch_size, size)
        for label, backend in backends:
            jobs.append((label, backend, batch_size, (lambda b=backend, x=images: b.predict(x))))
    with torch.inference_mode():
        times = time_interleaved([job[3] for job in jobs], repeats, warmup)
    rows = []
    for (label, backend, batch_size, _), seconds in zip(jobs, times):
        median = statistics.median(seconds)
        rows.append(BackendRow(label, backend.name, backend.precision, batch_size, median, min(seconds), max(seconds),
                               batch_size / median, seconds))
    return rows


def speed_table(rows: Sequence[BackendRow], reference: str | None = None) -> str:
    """A Markdown table; ``reference``: the label whose images/s the others are divided by (per batch size)."""
    base = {r.batch_size: r.images_per_s for r in rows if r.label == reference}
    lines = ["| backend | precision | batch | latency ms (min-max) | images/s |" + (f" vs {reference} |" if base else ""),
             "| --- | --- | ---: | ---: | ---: |" + (" ---: |" if base else "")]
    for r in rows:
        line = (f"| {r.label} | {r.precision} | {r.batch_size} | {1000 * r.median_s:.1f} ({1000 * r.min_s:.1f}-"
                f"{1000 * r.max_s:.1f}) | {r.images_per_s:.2f} |")
        if base:
            line += f" {r.images_per_s / base[r.batch_size]:.2f}x |" if r.batch_size in base else " |"
        lines.append(line)
    return "\n".join(lines)


def rows_as_dicts(rows: Sequence[BackendRow]) -> list[dict]:
    return [asdict(r) for r in rows]
