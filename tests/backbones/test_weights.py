"""Backbone weights files: ImageNet weights from the torch hub cache (``backbone_weights="imagenet"``,
the message when the file is missing, a cached torchvision ResNet-18 computing as torchvision's);
damaged or mismatching files are one-line UserErrors naming the file and the first mismatching
tensors (issue 19 item 7)."""
import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn
from torchvision.models import resnet18

from anchordet.backbones.resnet import ResNet
from anchordet.backbones.weights import (
    imagenet_weights_file, load_state_dict_file, load_torchvision_weights, resolve_backbone_weights, state_dict_mismatch,
)
from anchordet.cli.main import main
from anchordet.config.schema import ConfigError, ModelConfig
from anchordet.errors import UserError


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


@pytest.fixture
def truncated(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file(torchvision.models.resnet18().state_dict(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def test_state_dict_mismatch_is_one_line_in_model_order():
    own = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1)}
    assert state_dict_mismatch(own, dict(own)) is None
    line = state_dict_mismatch(own, {"b": torch.zeros(4), "c": torch.zeros(1), "z": torch.zeros(1)})
    assert line == "missing (1): a; unexpected (1): z; shape mismatch (1): b: file (4,) vs model (3,)"


def test_a_truncated_safetensors_file_is_named(truncated):
    with pytest.raises(UserError, match=f"{truncated}: not a readable safetensors file, truncated or damaged"):
        load_state_dict_file(truncated)


def test_a_truncated_torch_file_is_named(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match=f"{path}: not a plain weights file, or damaged"):
        load_state_dict_file(path)


def test_backbone_weights_of_another_depth_name_the_file_and_first_tensors(tmp_path):
    path = tmp_path / "resnet34.safetensors"
    save_file(torchvision.models.resnet34().state_dict(), str(path))
    with pytest.raises(UserError) as err:
        load_torchvision_weights(ResNet(18), str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: weights do not fit ResNet; nothing was loaded: unexpected (")
    assert "layer1.2.bn1.bias" in message and "\n" not in message  # safetensors files list keys sorted


def test_truncated_backbone_weights_in_a_config_are_one_line(truncated, tmp_path, capsys):
    config = ModelConfig("retinanet_resnet_fpn", {"depth": 18, "num_classes": 3, "backbone_weights": str(truncated)})
    with pytest.raises(UserError, match="truncated or damaged"):
        config.build()
    code = main(["train", "--no-progress", "-c", "retinanet_digits_fast", "--set", "model.backbone_width=64",
                 "--set", f"model.backbone_weights={truncated}", "--set", "data.digits.num_train=2",
                 "--set", f"run.out_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(truncated) in err and "truncated or damaged" in err, err


def test_a_factory_check_of_an_option_value_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model \(retinanet_resnet_fpn\): ResNet depth must be one of"):
        ModelConfig("retinanet_resnet_fpn", {"depth": 33, "num_classes": 3}).build()
