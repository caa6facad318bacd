"""anchordet: anchor-based object detection on PyTorch (RetinaNet, SSD, Faster R-CNN)."""
from anchordet.detectors.retinanet import (
    RetinaNet,
    retinanet_resnet18_fpn,
    retinanet_resnet34_fpn,
    retinanet_resnet50_fpn,
    retinanet_resnet101_fpn,
    retinanet_resnet152_fpn,
)
from anchordet.structures import Detections, ImageBatch, Targets

__version__ = "0.1.0"

__all__ = [
    "Targets", "Detections", "ImageBatch", "__version__", "RetinaNet", "retinanet_resnet18_fpn",
    "retinanet_resnet34_fpn", "retinanet_resnet50_fpn", "retinanet_resnet101_fpn", "retinanet_resnet152_fpn",
]
