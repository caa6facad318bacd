"""anchordet: anchor-based object detection on PyTorch (RetinaNet, SSD, Faster R-CNN).

Detectors keep one contract: ``forward(images)`` -> raw head outputs, ``loss(images, targets)``
-> dict of scalar losses, ``predict(images)`` -> one ``Detections`` per image. Images are float
tensors in [0, 1]; ``Targets`` hold absolute xyxy boxes and labels 0..K-1.

The names below are imported on first use (module ``__getattr__``), so ``import anchordet``
and the torch-free parts (``anchordet.evaluation``, ``anchordet score``, ``anchordet --help``)
do not pay for importing torch and torchvision.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it (imported when the name is first looked up)
_LAZY = {
    **dict.fromkeys(("FasterRCNN", "faster_rcnn_resnet18_c4", "faster_rcnn_resnet50_c4",
                     "faster_rcnn_resnet101_c4", "faster_rcnn_resnet_c4", "faster_rcnn_vgg16"),
                    "anchordet.detectors.faster_rcnn"),
    **dict.fromkeys(("RetinaNet", "retinanet_resnet18_fpn", "retinanet_resnet34_fpn", "retinanet_resnet50_fpn",
                     "retinanet_resnet101_fpn", "retinanet_resnet152_fpn", "retinanet_resnet_fpn"),
                    "anchordet.detectors.retinanet"),
    **dict.fromkeys(("SSD", "ssd300_vgg16", "ssd512_vgg16", "ssd_vgg16"), "anchordet.detectors.ssd"),
    **dict.fromkeys(("Detections", "ImageBatch", "Targets"), "anchordet.structures"),
    **dict.fromkeys(("from_torchvision", "to_torchvision"), "anchordet.interop.torchvision"),
    **dict.fromkeys(("export_onnx", "export_torchscript"), "anchordet.export"),
    **dict.fromkeys(("load", "Predictor", "Prediction"), "anchordet.predictor"),
}

__all__ = [
    "Targets", "Detections", "ImageBatch", "__version__",
    "RetinaNet", "retinanet_resnet_fpn", "retinanet_resnet18_fpn", "retinanet_resnet34_fpn",
    "retinanet_resnet50_fpn", "retinanet_resnet101_fpn", "retinanet_resnet152_fpn",
    "SSD", "ssd_vgg16", "ssd300_vgg16", "ssd512_vgg16",
    "FasterRCNN", "faster_rcnn_vgg16", "faster_rcnn_resnet_c4", "faster_rcnn_resnet18_c4",
    "faster_rcnn_resnet50_c4", "faster_rcnn_resnet101_c4",
    "from_torchvision", "to_torchvision", "export_onnx", "export_torchscript", "load", "Predictor",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'anchordet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
