"""Weight conversion between anchordet and other libraries (torchvision)."""
from anchordet.backbones.weights import imagenet_weights_file, resolve_backbone_weights
from anchordet.interop.torchvision import Converted, coco_categories, from_torchvision
from anchordet.interop.torchvision_models import to_torchvision

__all__ = ["Converted", "coco_categories", "from_torchvision", "imagenet_weights_file", "resolve_backbone_weights",
           "to_torchvision"]
