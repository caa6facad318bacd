"""anchordet: anchor-based object detection on PyTorch (RetinaNet, SSD, Faster R-CNN)."""
from anchordet.structures import Detections, ImageBatch, Targets

__version__ = "0.1.0"

__all__ = ["Targets", "Detections", "ImageBatch", "__version__"]
