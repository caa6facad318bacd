import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder as TVBoxCoder

from anchordet.coding.box_coder import SSD_BOX_CODER, BoxCoder


def test_encode_hand_worked():
    anchor = torch.tensor([[0.0, 0.0, 10.0, 20.0]])  # centre (5, 10), w 10, h 20
    box = torch.tensor([[2.0, 4.0, 22.0, 24.0]])  # centre (12, 14), w 20, h 20
    deltas = BoxCoder().encode(box, anchor)
    torch.testing.assert_close(deltas, torch.tensor([[7 / 10, 4 / 20, math.log(2.0), 0.0]]))
    ssd = SSD_BOX_CODER.encode(box, anchor)  # variances 0.1 / 0.2 == weights 10, 10, 5, 5
    torch.testing.assert_close(ssd, torch.tensor([[7 / 10 / 0.1, 4 / 20 / 0.1, math.log(2.0) / 0.2, 0.0]]))


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_round_trip(weights):
    g = torch.Generator().manual_seed(0)
    anchors = torch.rand(100, 2, generator=g) * 50
    anchors = torch.cat([anchors, anchors + 5 + torch.rand(100, 2, generator=g) * 40], 1)
    boxes = torch.rand(100, 2, generator=g) * 50
    boxes = torch.cat([boxes, boxes + 1 + torch.rand(100, 2, generator=g) * 60], 1)
    coder = BoxCoder(weights)
    torch.testing.assert_close(coder.decode(coder.encode(boxes, anchors), anchors), boxes, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_matches_torchvision(weights):
    g = torch.Generator().manual_seed(1)
    anchors = torch.tensor([[0.0, 0, 16, 16], [10, 20, 60, 40], [5, 5, 6, 9]])
    deltas = torch.randn(3, 4, generator=g)
    tv = TVBoxCoder(weights)
    torch.testing.assert_close(BoxCoder(weights).decode(deltas, anchors), tv.decode_single(deltas, anchors))
    boxes = torch.tensor([[1.0, 2, 15, 18], [12, 22, 50, 45], [4, 4, 8, 8]])
    torch.testing.assert_close(BoxCoder(weights).encode(boxes, anchors), tv.encode_single(boxes, anchors))


def test_decode_clamps_dw_dh():
    anchor = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    boxes = BoxCoder().decode(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), anchor)
    assert torch.isfinite(boxes).all()
    torch.testing.assert_close(boxes[0, 2] - boxes[0, 0], torch.tensor(1000.0))  # 16 * 1000 / 16


def test_decode_broadcasts_and_keeps_fp32_under_half_inputs():
    anchors = torch.tensor([[0.0, 0, 10, 10]])
    deltas = torch.zeros(2, 5, 4, dtype=torch.float16)
    out = BoxCoder().decode(deltas, anchors)
    assert out.shape == (2, 5, 4) and out.dtype == torch.float32
