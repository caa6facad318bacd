import pytest
import torch

from anchordet.ops.roi_pool import (RoIPooler, roi_align, roi_align_reference, roi_pool,
                                    roi_pool_reference)


def _boxes(generator, count, size):
    xy = torch.rand(count, 2, generator=generator) * size * 0.8
    wh = torch.rand(count, 2, generator=generator) * size * 0.6 + 0.5
    boxes = torch.cat([xy, xy + wh], dim=1) - size * 0.05  # some start a little outside
    return boxes


def _case(seed=0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 3, 9, 11, generator=g)
    boxes = [_boxes(g, 5, 16 * 10), _boxes(g, 3, 16 * 10)]
    boxes[1][0] = torch.tensor([0.0, 0.0, 16 * 11, 16 * 9])  # the whole map
    boxes[0][0] = torch.tensor([8.0, 24.0, 40.0, 56.0])  # x.5 on the grid: rounds half away from 0
    return features, boxes


@pytest.mark.parametrize("output_size", [7, (2, 3)])
def test_roi_pool_matches_reference(output_size):
    features, boxes = _case()
    torch.testing.assert_close(roi_pool(features, boxes, output_size, 1 / 16),
                               roi_pool_reference(features, boxes, output_size, 1 / 16))


@pytest.mark.parametrize("sampling_ratio,aligned", [(0, True), (2, False), (0, False), (1, True)])
def test_roi_align_matches_reference(sampling_ratio, aligned):
    features, boxes = _case(1)
    torch.testing.assert_close(roi_align(features, boxes, 4, 1 / 16, sampling_ratio, aligned),
                               roi_align_reference(features, boxes, 4, 1 / 16, sampling_ratio, aligned),
                               rtol=1e-5, atol=1e-5)


def test_roi_pool_hand_worked():
    features = torch.arange(16.0).reshape(1, 1, 4, 4)  # value = 4 * row + column
    out = roi_pool(features, [torch.tensor([[0.0, 0, 3, 3]])], 2, 1.0)
    # the box covers cells 0..3 in both directions; 2x2 bins of 2x2 cells, max at each bin's
    # bottom-right cell: rows 1/3, columns 1/3
    assert out.flatten().tolist() == [4 * 1 + 1, 4 * 1 + 3, 4 * 3 + 1, 4 * 3 + 3]


def test_roi_align_hand_worked_on_a_linear_map():
    # f(y, x) = x: bilinear sampling is exact, so a bin's value is the mean x of its samples,
    # i.e. the bin's centre; aligned=True maps pixel x to x - 0.5 on the grid.
    features = torch.arange(8.0).repeat(8, 1)[None, None]  # (1, 1, 8, 8)
    out = roi_align(features, [torch.tensor([[2.0, 2, 6, 6]])], 2, 1.0, sampling_ratio=2, aligned=True)
    # box x in [1.5, 5.5] on the grid: bin centres 1.5 + 1 = 2.5 and 1.5 + 3 = 4.5
    torch.testing.assert_close(out[0, 0], torch.tensor([[2.5, 4.5], [2.5, 4.5]]))


def test_gradient_reaches_features_and_empty_inputs():
    features, boxes = _case()
    features.requires_grad_(True)
    for pooler in (RoIPooler("pool", 3), RoIPooler("align", 3)):
        features.grad = None
        pooler(features, boxes).sum().backward()
        assert features.grad.abs().sum() > 0
    empty = [torch.zeros(0, 4), torch.zeros(0, 4)]
    assert roi_pool(features, empty, 7, 1 / 16).shape == (0, 3, 7, 7)
    assert roi_align(features, empty, 7, 1 / 16).shape == (0, 3, 7, 7)
    assert roi_pool_reference(features, empty, 7, 1 / 16).shape == (0, 3, 7, 7)


def test_bad_arguments():
    features, boxes = _case()
    with pytest.raises(ValueError, match="boxes for 1 images but 2 feature maps"):
        roi_pool(features, boxes[:1], 7, 1 / 16)
    with pytest.raises(ValueError, match="'pool' or 'align'"):
        RoIPooler("max")
