"""anchordet: anchor-based object detection on PyTorch (RetinaNet, SSD, Faster R-CNN).

Detectors keep one contract: ``forward(images)`` -> raw head outputs, ``loss(images, targets)``
-> dict of scalar losses, ``predict(images)`` -> one ``Detections`` per image. Images are float
tensors in [0, 1]; ``Targets`` hold absolute xyxy boxes and labels 0..K-1.
"""
from anchordet.detectors.faster_rcnn import (
    FasterRCNN,
    faster_rcnn_resnet18_c4,
    faster_rcnn_resnet50_c4,
    faster_rcnn_resnet101_c4,
    faster_rcnn_resnet_c4,
    faster_rcnn_vgg16,
)
from anchordet.detectors.retinanet import (
    RetinaNet,
    retinanet_resnet18_fpn,
    retinanet_resnet34_fpn,
    retinanet_resnet50_fpn,
    retinanet_resnet101_fpn,
    retinanet_resnet152_fpn,
    retinanet_resnet_fpn,
)
from anchordet.detectors.ssd import SSD, ssd300_vgg16, ssd512_vgg16, ssd_vgg16
from anchordet.structures import Detections, ImageBatch, Targets

__version__ = "0.1.0"

__all__ = [
    "Targets", "Detections", "ImageBatch", "__version__",
    "RetinaNet", "retinanet_resnet_fpn", "retinanet_resnet18_fpn", "retinanet_resnet34_fpn",
    "retinanet_resnet50_fpn", "retinanet_resnet101_fpn", "retinanet_resnet152_fpn",
    "SSD", "ssd_vgg16", "ssd300_vgg16", "ssd512_vgg16",
    "FasterRCNN", "faster_rcnn_vgg16", "faster_rcnn_resnet_c4", "faster_rcnn_resnet18_c4",
    "faster_rcnn_resnet50_c4", "faster_rcnn_resnet101_c4",
    "from_torchvision", "to_torchvision", "export_onnx", "export_torchscript", "load", "Predictor",
]


def __getattr__(name):
    # Interop and export pull in torchvision's detection models and onnx: imported on first use.
    if name in ("from_torchvision", "to_torchvision"):
        from anchordet.interop import torchvision as interop

        return getattr(interop, name)
    if name in ("export_onnx", "export_torchscript"):
        from anchordet import export

        return getattr(export, name)
    if name in ("load", "Predictor", "Prediction"):
        from anchordet import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'anchordet' has no attribute {name!r}")
