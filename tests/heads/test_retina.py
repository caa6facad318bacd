import math

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
