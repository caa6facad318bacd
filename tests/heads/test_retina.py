import math

import pytest
import torch

from anchordet.heads.retina import RetinaHead, flatten_anchors


def test_flatten_order_matches_anchor_generator():
    batch, anchors, classes, height, width = 2, 3, 4, 5, 6
    output = torch.zeros(batch, anchors * classes, height, width)
    y, x, a, k = 2, 4, 1, 3
    output[1, a * classes + k, y, x] = 7.0
    flat = flatten_anchors(output, classes)
    assert flat.shape == (batch, height * width * anchors, classes)
    assert flat[1, (y * width + x) * anchors + a, k] == 7.0
    assert flat.abs().sum() == 7.0


def test_seed_000_shapes_and_init():
    head = RetinaHead(256, 9, 20)
    features = [torch.zeros(2, 256, 10, 13), torch.zeros(2, 256, 5, 7)]
    with torch.no_grad():
        cls, box = head(features)
    assert [tuple(c.shape) for c in cls] == [(2, 1170, 20), (2, 315, 20)]
    assert [tuple(b.shape) for b in box] == [(2, 1170, 4), (2, 315, 4)]
    # zero input: logits are the bias -log(99), i.e. probability 0.01; deltas are 0
    torch.testing.assert_close(torch.sigmoid(cls[0]), torch.full_like(cls[0], 0.01))
    assert box[0].abs().sum() == 0
    assert abs(head.cls_output.bias[0].item() + math.log(0.99 / 0.01)) < 1e-6
    assert abs(head.cls_subnet[0].weight.std().item() - 0.01) < 0.001


def test_separate_subnets():
    head = RetinaHead(8, 9, 3, channels=8, num_convs=4)
    assert len([m for m in head.cls_subnet if isinstance(m, torch.nn.Conv2d)]) == 4
    assert head.cls_subnet[0].weight is not head.box_subnet[0].weight


def test_group_norm_subnets():
    """norm="gn": conv, GroupNorm, ReLU per subnet conv; groups keep >= 8 channels (at most 32),
    convs keep the paper's N(0, 0.01) and the norms start as identity affine maps."""
    from anchordet.heads.retina import gn_groups

    assert [gn_groups(c) for c in (4, 16, 32, 256, 512)] == [1, 2, 4, 32, 32]
    head = RetinaHead(32, 9, 10, channels=32, num_convs=2, norm="gn")
    kinds = [type(m).__name__ for m in head.cls_subnet]
    assert kinds == ["Conv2d", "ContiguousGroupNorm", "ReLU"] * 2 and isinstance(head.cls_subnet[1], torch.nn.GroupNorm)
    norm = head.box_subnet[1]
    assert norm.num_groups == 4 and bool((norm.weight == 1).all()) and bool((norm.bias == 0).all())
    # each (image, group) is normalised on its own: scaling one image leaves its subnet output unchanged
    features = torch.randn(2, 32, 6, 6)
    scaled = features.clone()
    scaled[1] *= 5
    with torch.no_grad():
        torch.testing.assert_close(head.cls_subnet(features)[1], head.cls_subnet(scaled)[1], rtol=1e-4, atol=1e-4)
        cls, box = head([features])
    assert cls[0].shape == (2, 6 * 6 * 9, 10) and box[0].shape == (2, 6 * 6 * 9, 4)
    with pytest.raises(ValueError, match="'bn'"):
        RetinaHead(32, 9, 10, norm="bn")


def test_contiguous_group_norm_equals_group_norm_on_channels_last_inputs():
    from anchordet.heads.retina import ContiguousGroupNorm

    torch.manual_seed(0)
    ours, plain = ContiguousGroupNorm(4, 32), torch.nn.GroupNorm(4, 32)
    with torch.no_grad():
        for norm in (ours, plain):
            norm.weight.copy_(torch.linspace(0.5, 2, 32))
            norm.bias.copy_(torch.linspace(-1, 1, 32))
    x = torch.randn(2, 32, 5, 7).to(memory_format=torch.channels_last)
    torch.testing.assert_close(ours(x), plain(x))
    assert ours.state_dict().keys() == plain.state_dict().keys()
