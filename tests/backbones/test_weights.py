"""ImageNet backbone weights from the torch hub cache (``backbone_weights="imagenet"``): the
message when the file is missing, and a cached torchvision ResNet-18 computing as torchvision's."""
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from anchordet.backbones.weights import imagenet_weights_file, resolve_backbone_weights
from anchordet.config.schema import ModelConfig


def test_missing_cached_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        imagenet_weights_file("vgg16_bn", download=False)
    message = str(error.value)
    assert "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth" in message
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16_bn-6c64b313.pth") in message
    assert "--set model.backbone_weights=" in message
    assert resolve_backbone_weights("none", "resnet50") is None and resolve_backbone_weights(None, "vgg16") is None
    assert resolve_backbone_weights("/data/r50.pth", "resnet50") == "/data/r50.pth"
    with pytest.raises(ValueError, match="known: resnet18"):
        imagenet_weights_file("alexnet", download=False)


def test_imagenet_backbone_from_the_cache_computes_like_torchvision(tmp_path, monkeypatch):
    """``backbone_weights="imagenet"`` in a config: torchvision's ResNet-18 file (random weights
    here, saved where torch.hub caches it) loads, and our C5 equals torchvision's layer4."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(5)
    peer = resnet18(weights=None).eval()
    with torch.no_grad():
        for module in peer.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2)
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"  # ResNet18_Weights.IMAGENET1K_V1
    cached.parent.mkdir(parents=True)
    torch.save(peer.state_dict(), cached)
    model = ModelConfig("retinanet_resnet_fpn", {"depth": 18, "num_classes": 2, "backbone_weights": "imagenet"}).build()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = peer.layer4(peer.layer3(peer.layer2(peer.layer1(peer.maxpool(peer.relu(peer.bn1(peer.conv1(images))))))))
        assert torch.allclose(model.backbone.eval()(images)[-1], expected, rtol=1e-5, atol=1e-5)
