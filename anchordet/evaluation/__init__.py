"""Evaluation: COCO AP/AR (equal to pycocotools) and VOC AP (11-point and area), streaming.

``ev = CocoEvaluator(gt)`` or ``VocEvaluator(gt)``; ``ev.add(image_id, boxes_xyxy, scores,
category_ids)`` per image or ``ev.add_results(coco_results)``; ``ev.summarize()``.
"""
from anchordet.evaluation.coco import CocoEvaluator, CocoMetrics
from anchordet.evaluation.results import detections_to_coco_results
from anchordet.evaluation.voc import VocEvaluator, VocMetrics

__all__ = ["CocoEvaluator", "CocoMetrics", "VocEvaluator", "VocMetrics", "detections_to_coco_results"]
