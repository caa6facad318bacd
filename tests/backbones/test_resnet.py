import pytest
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops import FrozenBatchNorm2d

from anchordet.backbones.resnet import ResNet
from anchordet.backbones.weights import load_state_dict_file, load_torchvision_weights
from anchordet.ops.fuse import fold_batch_norms


@pytest.mark.parametrize("depth", [18, 50])
def test_matches_torchvision_resnet_with_its_weights(depth):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")().eval()
    for m in tv.modules():  # non-trivial BN statistics, so a wrong mapping shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ours = ResNet(depth, ("c3", "c4", "c5"), frozen_bn=True).eval()
    load_torchvision_weights(ours, tv.state_dict())
    extractor = create_feature_extractor(tv, {"layer2": "c3", "layer3": "c4", "layer4": "c5"})
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        expected = extractor(x)
        got = ours(x)
    for name, tensor in zip(["c3", "c4", "c5"], got):
        # FrozenBatchNorm2d folds the BN into scale and shift: float rounding differs slightly
        torch.testing.assert_close(tensor, expected[name], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("depth,channels", [(18, [128, 256, 512]), (34, [128, 256, 512]), (50, [512, 1024, 2048]),
                                            (101, [512, 1024, 2048]), (152, [512, 1024, 2048])])
def test_out_channels(depth, channels):
    assert ResNet(depth).out_channels == channels


def test_c4_output_stride_16():
    model = ResNet(50, ("c4",), width=16).eval()
    with torch.no_grad():
        (c4,) = model(torch.zeros(1, 3, 64, 96))
    assert c4.shape == (1, 16 * 4 * 4, 4, 6) and model.out_channels == [256]
    assert model.stage("c5") is model.layer4


def test_frozen_bn_and_trainable_layers():
    model = ResNet(18, trainable_layers=2)
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4"}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(p.requires_grad for p in ResNet(18, trainable_layers=5).parameters())


def test_loading_mismatch_lists_keys_and_loads_nothing(tmp_path):
    model = ResNet(18)
    before = model.conv1.weight.clone()
    state = torchvision.models.resnet34().state_dict()
    with pytest.raises(ValueError) as err:
        load_torchvision_weights(model, state)
    assert "unexpected" in str(err.value) and "layer1.2.conv1.weight" in str(err.value)
    state18 = torchvision.models.resnet18().state_dict()
    del state18["layer4.1.bn2.bias"]
    with pytest.raises(ValueError, match="missing \\(1\\): layer4.1.bn2.bias"):
        load_torchvision_weights(model, state18)
    assert torch.equal(model.conv1.weight, before)


def test_weights_file_formats_and_pickle_refused(tmp_path):
    from safetensors.torch import save_file
    state = torchvision.models.resnet18().state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "r18.safetensors"))
    torch.save(state, tmp_path / "r18.pth")
    for name in ("r18.safetensors", "r18.pth"):
        load_torchvision_weights(ResNet(18), tmp_path / name)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="not a plain weights file"):
        load_state_dict_file(tmp_path / "evil.pth")
    with pytest.raises(FileNotFoundError):
        load_state_dict_file(tmp_path / "missing.pth")


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        ResNet(20)
    with pytest.raises(ValueError, match="unknown ResNet outputs"):
        ResNet(18, ("c6",))


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("frozen_bn,train", [(True, True), (True, False), (False, False), (False, True)])
@pytest.mark.parametrize("fold", [False, True])
def test_block_forward_matches_reference(depth, frozen_bn, train, fold):
    """Every block's forward (in-place add/ReLU; BN folded into the convs when ``fold`` and the
    BN is fixed) against the plain module-by-module forward, outputs and gradients."""
    torch.manual_seed(0)
    model = ResNet(depth, ("c3",), frozen_bn=frozen_bn, trainable_layers=5, width=8, fold_bn=fold)
    assert all(block.fold_bn is fold for block in model.layer1)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.2, 0.2)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    model.train(train)
    for block in list(model.layer1) + list(model.layer2):
        x = torch.randn(2, block.conv1.in_channels, 10, 12, requires_grad=True)
        got = block(x)
        g_got = torch.autograd.grad(got.sum(), [x, block.conv1.weight])
        expected = block.forward_reference(x)
        g_exp = torch.autograd.grad(expected.sum(), [x, block.conv1.weight])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        for g, e in zip(g_got, g_exp):
            torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


def test_folded_resnet_matches_plain_and_folds():
    """The whole folded ResNet against the plain one; no BN module runs when folded (frozen)."""
    torch.manual_seed(0)
    model = ResNet(50, ("c3", "c4", "c5"), width=8).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        calls = []
        for m in model.modules():
            if isinstance(m, FrozenBatchNorm2d):
                m.register_forward_hook(lambda *args: calls.append(1))
        got = fold_batch_norms(model)(x)
    assert calls == [] and model.fold_bn and model.layer3[0].fold_bn
    assert not any("fold_bn" in vars(cls) for cls in (ResNet, type(model.layer3[0])))  # a per-model setting
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


def _conv_stds(model: torch.nn.Module) -> dict[str, tuple[float, float]]:
    """{conv name: (std of its weight, He fan_out std sqrt(2 / (k * k * out_channels)))}."""
    return {name: (m.weight.std().item(), (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5)
            for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}


@pytest.mark.parametrize("depth", [18, 50])
def test_every_conv_starts_with_he_fan_out_init_as_torchvision(depth):
    """Seed 001 (and torchvision's ResNet) draw every conv from N(0, sqrt(2 / (k*k*out))). The
    smallest conv has 4096 weights: the sampled std is within 1.1% (one sigma) of the true one,
    so 6% separates it clearly from PyTorch's default init (2.4x smaller)."""
    torch.manual_seed(0)
    ours = _conv_stds(ResNet(depth, frozen_bn=False))
    theirs = _conv_stds(getattr(torchvision.models, f"resnet{depth}")())
    assert set(ours) == set(theirs) and len(ours) == (20 if depth == 18 else 53)
    for name, (std, he) in ours.items():
        assert std == pytest.approx(he, rel=0.06), name
        assert std == pytest.approx(theirs[name][0], rel=0.08), name
    model = ResNet(depth, frozen_bn=False)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert bool((m.weight == 1).all()) and bool((m.bias == 0).all())


def test_retinanet_backbone_is_he_initialised_and_heads_keep_the_paper_init():
    import math

    from anchordet.detectors.retinanet import retinanet_resnet_fpn

    torch.manual_seed(0)
    model = retinanet_resnet_fpn(18, 3, frozen_bn=False)
    layer1 = model.backbone.layer1[0].conv1
    assert layer1.weight.std().item() == pytest.approx((2.0 / (9 * 64)) ** 0.5, rel=0.06)  # 0.059, not 0.024
    assert model.head.cls_subnet[0].weight.std().item() == pytest.approx(0.01, rel=0.06)
    assert torch.allclose(model.head.cls_output.bias, torch.full_like(model.head.cls_output.bias,
                                                                      -math.log(99.0)))
    assert bool((model.head.box_output.weight == 0).all())


@pytest.mark.parametrize("depth", [18, 50])
def test_zero_init_residual_zeroes_the_same_norms_as_torchvision(depth):
    """torchvision's ``zero_init_residual`` zeroes bn2 of every BasicBlock and bn3 of every
    Bottleneck: the same names here, and then a block without downsample is relu(x) at start."""
    def zeroed(model):
        return sorted(name for name, m in model.named_modules()
                      if isinstance(m, torch.nn.BatchNorm2d) and bool((m.weight == 0).all()))

    ours = zeroed(ResNet(depth, frozen_bn=False, zero_init_residual=True))
    theirs = zeroed(getattr(torchvision.models, f"resnet{depth}")(zero_init_residual=True))
    assert ours == theirs and len(ours) == (8 if depth == 18 else 16)
    assert zeroed(ResNet(depth, frozen_bn=False)) == []
    block = ResNet(depth, frozen_bn=False, zero_init_residual=True).layer1[1].eval()
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x.clone()), x.relu())
