"""Run a detector over a dataset and score it with the COCO or VOC evaluator (any number of processes)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from anchordet import distributed as dist_utils
from anchordet.detectors.base import Detector
from anchordet.engine.data import EpochSampler, make_loader
from anchordet.postprocess.rescale import rescale_detections
from anchordet.progress import Progress

if TYPE_CHECKING:
    from anchordet.backends import Backend


class EvaluationCancelled(Exception):
    """``should_stop`` answered True (a stop request during training's evaluation)."""


@dataclass
class EvaluationResult:
    """``metrics``: the evaluator's summary; ``headline``: AP (coco) or mAP (voc) for picking the
    best checkpoint; ``results``: COCO-format detections in original image pixels."""

    metrics: Any
    headline: float
    results: list[dict]

    def scalars(self) -> dict[str, float]:
        values = self.metrics.to_dict()
        flat = dict(values.get("stats", {}))
        if "mAP" in values:
            flat["mAP"] = values["mAP"]
        return {k: float(v) for k, v in flat.items() if isinstance(v, (int, float))}


def make_evaluator(metric: str, ground_truth: dict, max_dets: int = 100):
    """``max_dets``: COCO's maxDets [1, 10, max_dets] (the VOC metrics count every detection)."""
    from anchordet.evaluation import CocoEvaluator, VocEvaluator

    if metric == "coco":
        return CocoEvaluator(ground_truth, max_dets=max_dets)
    return VocEvaluator(ground_truth, iou_threshold=0.5, use_07_metric=(metric == "voc07"))


@torch.no_grad()
def predict_dataset(model: "Detector | Backend", dataset, device: torch.device, batch_size: int = 8, num_workers: int = 0,
                    should_stop: Callable[[], bool] | None = None, progress: bool = False) -> list[dict]:
    """This process's share of ``dataset`` through ``model.predict``, as COCO results (original pixels).
    ``model``: a detector, or any object with its ``predict(images) -> list[Detections]`` (an
    ``anchordet.backends.Backend``: an exported file).
    Batches are padded as the detector asks (``model.size_divisible``: 1 for a fixed-size SSD).

    ``should_stop`` is called before each global batch and after the last, the same number of
    times in every process (so it may hold a collective); True raises ``EvaluationCancelled``.
    ``progress``: a bar on a terminal, a line every 100 batches elsewhere (``anchordet.progress``).
    """
    world = dist_utils.world_size()
    sampler = EpochSampler(len(dataset), batch_size * world, seed=0, epoch=0, shuffle=False,
                           rank=dist_utils.rank(), world_size=world, drop_last=False)
    loader = make_loader(dataset, sampler, batch_size, num_workers, model.size_divisible, seed=0, epoch=0,
                         pin_memory=device.type == "cuda")
    steps = math.ceil(len(dataset) / (batch_size * world))  # a process whose share ended early still counts
    bar = Progress(steps, "evaluating", every=100, end_line=False, enabled=progress)
    batches = iter(loader)
    results = []
    was_training = isinstance(model, nn.Module) and model.training  # a Backend has no train mode
    if isinstance(model, nn.Module):
        model.eval()
    try:
        for _ in range(steps):
            _check(should_stop)
            batch = next(batches, None)
            bar.update(1)
            if batch is not None:
                results += _predict_batch(model, batch, device, dataset.category_ids)
        _check(should_stop)
    finally:
        bar.close()
        if isinstance(model, nn.Module):
            model.train(was_training)
    return results


def _check(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise EvaluationCancelled


def _predict_batch(model: "Detector | Backend", batch, device: torch.device, category_ids) -> list[dict]:
    from anchordet.evaluation import detections_to_coco_results

    results = []
    detections = model.predict(batch.images.to(device, non_blocking=True))
    for det, image_size, orig_size, image_id in zip(detections, batch.images.image_sizes, batch.orig_sizes,
                                                    batch.image_ids):
        det = rescale_detections(det.to("cpu"), image_size, orig_size)
        results += detections_to_coco_results(image_id, det.boxes, det.scores, det.labels, category_ids)
    return results


def evaluate_dataset(model: "Detector | Backend", dataset, metric: str, device: torch.device, batch_size: int = 8,
                     num_workers: int = 0, should_stop: Callable[[], bool] | None = None,
                     progress: bool = False, max_dets: int = 100) -> EvaluationResult | None:
    """Predict on every image (shared between processes) and score on rank 0 (None elsewhere).
    ``should_stop``, ``progress``: see ``predict_dataset``; ``max_dets``: COCO's last maxDets."""
    results = predict_dataset(model, dataset, device, batch_size, num_workers, should_stop=should_stop,
                              progress=progress)
    gathered = [r for part in dist_utils.all_gather_objects(results) for r in part]
    if not dist_utils.is_main_process():
        return None
    evaluator = make_evaluator(metric, dataset.coco_ground_truth(), max_dets)
    if gathered:
        evaluator.add_results(gathered)
    metrics = evaluator.summarize()
    headline = metrics.stats["AP"] if metric == "coco" else metrics.mAP
    return EvaluationResult(metrics, float(headline), gathered)
