from anchordet.backbones.fpn import FPN
from anchordet.backbones.resnet import RESNET_SPECS, ResNet, resnet
from anchordet.backbones.weights import load_state_dict_file, load_torchvision_weights

__all__ = ["FPN", "ResNet", "resnet", "RESNET_SPECS", "load_state_dict_file", "load_torchvision_weights"]
