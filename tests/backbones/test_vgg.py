import pytest
import torch
import torchvision

from anchordet.backbones.vgg import VGG16, VGG_IGNORED_PREFIXES
from anchordet.backbones.weights import load_torchvision_weights


@pytest.mark.parametrize("batch_norm", [True, False])
def test_keys_and_shapes_are_torchvisions_without_fc8(batch_norm):
    with torch.device("meta"):
        ours = VGG16(batch_norm=batch_norm, frozen_bn=False)
        theirs = (torchvision.models.vgg16_bn if batch_norm else torchvision.models.vgg16)()
    expected = {k: v.shape for k, v in theirs.state_dict().items()
                if not k.startswith(VGG_IGNORED_PREFIXES) and not k.startswith("features.43")}
    assert {k: v.shape for k, v in ours.state_dict().items()} == expected
    # pool5 (torchvision's features.43 in the BN model, features.30 without BN) is removed
    assert len(ours.features) == len(theirs.features) - 1
    assert isinstance(theirs.features[-1], torch.nn.MaxPool2d)


def test_torchvision_weights_load_and_give_conv5_3_at_stride_16():
    torch.manual_seed(0)
    # torchvision's own VGG16-BN conv part (its fc6 alone has 100M weights: too slow to build
    # here; the fc keys and shapes are checked on the meta device above).
    theirs = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"], batch_norm=True).eval()
    for module in theirs.modules():  # non-trivial BN statistics, so that a wrong mapping shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    ours = VGG16(batch_norm=True, fc_channels=16)  # frozen BN, as used for detection
    fc = {"classifier.0.weight": torch.randn(16, 512 * 7 * 7), "classifier.0.bias": torch.randn(16),
          "classifier.3.weight": torch.randn(16, 16), "classifier.3.bias": torch.randn(16),
          "classifier.6.weight": torch.randn(1000, 16), "classifier.6.bias": torch.randn(1000)}
    state = {f"features.{k}": v for k, v in theirs.state_dict().items()} | fc
    load_torchvision_weights(ours, state, ignore_prefixes=VGG_IGNORED_PREFIXES)
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        (conv5_3,) = ours(x)
        expected = theirs[:-1](x)
    assert conv5_3.shape == (1, 512, 48 // 16, 64 // 16)
    torch.testing.assert_close(conv5_3, expected, rtol=1e-4, atol=1e-4)
    classifier = ours.pop_classifier()
    torch.testing.assert_close(classifier[0].weight, fc["classifier.0.weight"])
    torch.testing.assert_close(classifier[3].bias, fc["classifier.3.bias"])
    assert "classifier.0.weight" not in ours.state_dict()


def test_wrong_weights_are_refused_by_name():
    ours = VGG16(batch_norm=False, width=8, fc_channels=16)
    with pytest.raises(ValueError, match="missing .*features.0.weight"):
        load_torchvision_weights(ours, {"features.1.weight": torch.zeros(8)})


@pytest.mark.parametrize("trainable_stages,first_trained", [(5, 0), (3, 14), (0, None)])
def test_trainable_stages(trainable_stages, first_trained):
    # VGG16 without BN: conv3_1 is features.10 (0,2 | pool 4 | 5,7 | pool 9 | 10,...); with BN
    # it is features.14 (Ren et al. fine-tune conv3_1 and up).
    model = VGG16(batch_norm=True, width=4, fc_channels=8, trainable_stages=trainable_stages)
    trained = [int(name.split(".")[0]) for name, p in model.features.named_parameters() if p.requires_grad]
    assert (min(trained) if trained else None) == first_trained
    assert all(p.requires_grad for p in model.classifier.parameters())


def test_width_and_odd_sizes():
    model = VGG16(batch_norm=False, width=4, fc_channels=8).eval()
    (out,) = model(torch.rand(2, 3, 50, 70))
    assert out.shape == (2, 32, 50 // 16, 70 // 16)  # each of the 4 pools rounds down
    assert model.classifier[0].in_features == 32 * 7 * 7
