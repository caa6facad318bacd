"""Datasets (COCO, VOC, YOLO, the built-in digits), transforms, collation and checks.

Start from ``load_dataset_spec`` / ``build_dataset`` (docs/data.md).
"""
from anchordet.config.schema import DigitsOptions
from anchordet.data.coco import CocoDataset, RecordDataset
from anchordet.data.collate import Batch, Sample, collate
from anchordet.data.digits import DigitsDataset
from anchordet.data.image_io import load_image
from anchordet.data.spec import DatasetSpec, build_dataset, digits_spec, load_dataset_spec
from anchordet.data.voc import VocDataset
from anchordet.data.yolo import YoloDataset

__all__ = ["Batch", "CocoDataset", "DatasetSpec", "DigitsDataset", "DigitsOptions", "RecordDataset", "Sample",
           "VocDataset", "YoloDataset", "build_dataset", "collate", "digits_spec", "load_dataset_spec", "load_image"]
