"""Datasets (COCO, VOC, YOLO, CSV, the built-in digits), transforms, collation and checks.

Start from ``load_dataset_spec`` / ``build_dataset`` (docs/data.md). The names below are imported
on first use, so that ``anchordet.data.spec`` / ``validate`` and the format readers (what
``anchordet check-data`` uses) load without torch.
"""
from __future__ import annotations

import importlib

_LAZY = {
    **dict.fromkeys(("CocoDataset", "CsvDataset", "RecordDataset", "VocDataset", "YoloDataset"),
                    "anchordet.data.datasets"),
    **dict.fromkeys(("Batch", "Sample", "collate"), "anchordet.data.collate"),
    "DigitsDataset": "anchordet.data.digits",
    "DigitsOptions": "anchordet.config.schema",
    "load_image": "anchordet.data.image_io",
    **dict.fromkeys(("DatasetSpec", "build_dataset", "digits_spec", "load_dataset_spec"), "anchordet.data.spec"),
}

__all__ = ["Batch", "CocoDataset", "CsvDataset", "DatasetSpec", "DigitsDataset", "DigitsOptions", "RecordDataset", "Sample",
           "VocDataset", "YoloDataset", "build_dataset", "collate", "digits_spec", "load_dataset_spec", "load_image"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
