import pytest
import torch

from anchordet.backbones.fpn import FPN
from anchordet.backbones.resnet import ResNet


def test_seed_001_shapes_resnet50_640x832():
    backbone, fpn = ResNet(50).eval(), FPN([512, 1024, 2048])
    with torch.no_grad():
        c = backbone(torch.zeros(2, 3, 640, 832))
        p = fpn(c)
    assert [tuple(x.shape[-2:]) for x in c] == [(80, 104), (40, 52), (20, 26)]
    assert [tuple(x.shape) for x in p] == [(2, 256, 80, 104), (2, 256, 40, 52), (2, 256, 20, 26),
                                           (2, 256, 10, 13), (2, 256, 5, 7)]


def test_odd_sizes_align_and_p6_source():
    c = [torch.randn(1, 8, 25, 13), torch.randn(1, 16, 13, 7), torch.randn(1, 32, 7, 4)]
    p = FPN([8, 16, 32], 4)(c)
    assert [tuple(x.shape[-2:]) for x in p] == [(25, 13), (13, 7), (7, 4), (4, 2), (2, 1)]
    assert FPN([8, 16, 32], 4, p6_from="p5").p6.in_channels == 4
    assert FPN([8, 16, 32], 4).p6.in_channels == 32


def test_top_down_path_reaches_p3():
    fpn = FPN([2, 2, 2], 2)
    c = [torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 4, 4), torch.randn(1, 2, 2, 2, requires_grad=True)]
    fpn(c)[0].sum().backward()
    assert c[2].grad.abs().sum() > 0


def test_bad_p6_source():
    with pytest.raises(ValueError):
        FPN([8], 4, p6_from="c4")
