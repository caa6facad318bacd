import pytest
import torch
from torch import nn

from anchordet.backbones.ssd_vgg import EXTRAS_300, EXTRAS_512, L2Norm, SSDVGG16, load_vgg16_weights


@pytest.mark.parametrize("image_size,extras,sides", [
    # pool3 rounds up: 300 -> 150 -> 75 -> 38 (seed 002's 'C'); conv10_2 / conv11_2 unpadded: 5 -> 3 -> 1
    (300, EXTRAS_300, [38, 19, 10, 5, 3, 1]),
    # SSD512: every extra halves, conv12_2 is 4x4 pad 1: 2 + 2 - 4 + 1 = 1
    (512, EXTRAS_512, [64, 32, 16, 8, 4, 2, 1]),
    (128, EXTRAS_300[:2], [16, 8, 4, 2]),
])
def test_feature_sizes_arithmetic_and_forward(image_size, extras, sides):
    backbone = SSDVGG16(width=4, extra_layers=extras)
    assert backbone.feature_sizes(image_size) == sides
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, image_size, image_size))
    assert [tuple(f.shape[-2:]) for f in features] == [(s, s) for s in sides]
    assert [f.shape[1] for f in features] == backbone.out_channels


def test_full_width_channels():
    backbone = SSDVGG16()
    # conv4_3 512, fc7 1024, conv8_2 512, conv9_2..conv11_2 256 (Liu et al. Fig. 2)
    assert backbone.out_channels == [512, 1024, 512, 256, 256, 256]
    assert backbone.extra[0][7][1].dilation == (6, 6) and backbone.extra[0][7][1].out_channels == 1024


def test_l2norm_by_hand():
    norm = L2Norm(2, scale=20.0)
    x = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    # 20 * (3, 4) / 5
    torch.testing.assert_close(norm(x).flatten(), torch.tensor([12.0, 16.0]))
    assert norm.weight.tolist() == [20.0, 20.0] and norm.weight.requires_grad


def vgg16_features(batch_norm=False):
    """torchvision's VGG16 ``features`` (configuration D) without the 120M-parameter classifier."""
    from torchvision.models.vgg import cfgs, make_layers
    return make_layers(cfgs["D"], batch_norm=batch_norm)


@pytest.fixture(scope="module")
def torchvision_ssd300_backbone():
    """What torchvision's ssd300_vgg16 builds as its backbone, from the same VGG16 features."""
    from torchvision.models.detection.ssd import SSDFeatureExtractorVGG
    torch.manual_seed(0)
    return SSDFeatureExtractorVGG(vgg16_features(), highres=False).eval()


def test_same_keys_shapes_and_order_as_torchvision(torchvision_ssd300_backbone):
    ours = [(k.replace("l2norm.weight", "scale_weight"), v.shape) for k, v in SSDVGG16().state_dict().items()]
    theirs = [(k, v.shape) for k, v in torchvision_ssd300_backbone.state_dict().items()]
    assert ours == theirs


def test_same_outputs_as_torchvision_with_the_same_weights(torchvision_ssd300_backbone):
    theirs = torchvision_ssd300_backbone
    ours = SSDVGG16().eval()
    state = {k.replace("scale_weight", "l2norm.weight"): v for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state)
    x = torch.rand(1, 3, 300, 300)
    with torch.no_grad():
        expected = list(theirs(x).values())
        got = ours(x)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e)


def test_load_torchvision_vgg16_weights(tmp_path):
    source = {f"features.{k}": v for k, v in vgg16_features().state_dict().items()}
    source["classifier.0.weight"] = torch.zeros(1)  # torchvision's fc layers are not used
    path = tmp_path / "vgg16.pth"
    torch.save(source, path)
    backbone = SSDVGG16()
    load_vgg16_weights(backbone, str(path))
    torch.testing.assert_close(backbone.features[21].weight, source["features.21.weight"])  # conv4_3
    torch.testing.assert_close(backbone.extra[0][5].weight, source["features.28.weight"])  # conv5_3
    with pytest.raises(ValueError, match=r"vgg16.pth: not torchvision vgg16 weights .*shape mismatch"):
        load_vgg16_weights(SSDVGG16(width=16), str(path))
    with pytest.raises(ValueError, match=r"missing: \['features.0.bias'"):
        load_vgg16_weights(SSDVGG16(), {k: v for k, v in source.items() if k != "features.0.bias"})


def test_load_torchvision_vgg16_bn_weights():
    features = vgg16_features(batch_norm=True)
    for module in features.modules():  # distinct running statistics to check they are copied
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_()
    source = {f"features.{k}": v for k, v in features.state_dict().items()}
    backbone = SSDVGG16(batch_norm=True)
    load_vgg16_weights(backbone, source)
    # vgg16_bn numbering: conv, bn, relu per conv; conv4_3 at 30 (bn 31), conv5_3 at 40 (bn 41)
    torch.testing.assert_close(backbone.features[30].weight, source["features.30.weight"])
    torch.testing.assert_close(backbone.features[31].running_mean, source["features.31.running_mean"])
    torch.testing.assert_close(backbone.extra[0][7].weight, source["features.40.weight"])
    torch.testing.assert_close(backbone.extra[0][8].running_mean, source["features.41.running_mean"])
    with pytest.raises(ValueError, match="not torchvision vgg16_bn weights"):
        load_vgg16_weights(backbone, {f"features.{k}": v for k, v in vgg16_features().state_dict().items()})


def test_batch_norm_variant_sizes():
    backbone = SSDVGG16(width=4, batch_norm=True)
    assert backbone.feature_sizes(300) == [38, 19, 10, 5, 3, 1]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules()) == 13


def test_freeze_first_stages():
    backbone = SSDVGG16(width=4)
    backbone.freeze(3)  # conv1_x, conv2_x frozen (Caffe SSD)
    convs = [m for m in backbone.features if isinstance(m, nn.Conv2d)]
    assert [c.weight.requires_grad for c in convs] == [False] * 4 + [True] * 6
    assert backbone.extra[0][1].weight.requires_grad and backbone.l2norm.weight.requires_grad
    with pytest.raises(ValueError, match="trainable_layers must be in 0..5"):
        backbone.freeze(6)
