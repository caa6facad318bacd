import pytest
import torch

from anchordet.heads.ssd import SSDHead

FEATURES = [torch.rand(2, 8, 5, 5), torch.rand(2, 16, 3, 3), torch.rand(2, 4, 1, 1)]


def test_shapes():
    head = SSDHead([8, 16, 4], [4, 6, 4], num_classes=3)
    cls_per_level, box_per_level = head(FEATURES)
    assert [c.shape for c in cls_per_level] == [(2, 25 * 4, 4), (2, 9 * 6, 4), (2, 1 * 4, 4)]
    assert [b.shape for b in box_per_level] == [(2, 25 * 4, 4), (2, 9 * 6, 4), (2, 1 * 4, 4)]


def test_channel_layout_is_box_major_then_location_row_major():
    # zero weights and bias = channel index: the logit of box a, class c at any location is the
    # channel a * (K + 1) + c; locations repeat row-major.
    head = SSDHead([8], [4], num_classes=2)
    conv = head.classification[0]
    torch.nn.init.zeros_(conv.weight)
    conv.bias.data = torch.arange(4 * 3, dtype=torch.float32)
    logits = head([torch.rand(1, 8, 2, 3)])[0][0][0]  # (2 * 3 * 4, 3)
    expected_one_location = torch.arange(12.0).view(4, 3)
    torch.testing.assert_close(logits, expected_one_location.repeat(6, 1))


def test_same_order_as_torchvision_heads():
    from torchvision.models.detection.ssd import SSDClassificationHead, SSDRegressionHead

    torch.manual_seed(0)
    ours = SSDHead([8, 16, 4], [4, 6, 4], num_classes=3)
    tv_cls = SSDClassificationHead([8, 16, 4], [4, 6, 4], num_classes=4)  # background at 0 there
    tv_box = SSDRegressionHead([8, 16, 4], [4, 6, 4])
    tv_box.module_list.load_state_dict(ours.regression.state_dict())
    # the conversion rolls each box's class channels: ours (c0, c1, c2, bg) = theirs (bg, c0, c1, c2)
    for our_conv, their_conv, boxes in zip(ours.classification, tv_cls.module_list, [4, 6, 4]):
        order = torch.arange(boxes * 4).view(boxes, 4).roll(1, dims=1).flatten()
        their_conv.weight.data = our_conv.weight.data[order].clone()
        their_conv.bias.data = our_conv.bias.data[order].clone()
    cls_per_level, box_per_level = ours(FEATURES)
    torch.testing.assert_close(torch.cat(box_per_level, dim=1), tv_box(FEATURES))
    theirs = tv_cls(FEATURES)
    torch.testing.assert_close(torch.cat(cls_per_level, dim=1), torch.cat((theirs[..., 1:], theirs[..., :1]), dim=-1))


def test_init_xavier_zero_bias():
    head = SSDHead([8], [4], num_classes=2)
    assert head.classification[0].bias.abs().sum() == 0 and head.regression[0].bias.abs().sum() == 0
    # Xavier uniform bound sqrt(6 / (fan_in + fan_out)), fan = channels * 3 * 3
    bound = (6 / (8 * 9 + 12 * 9)) ** 0.5
    assert head.classification[0].weight.abs().max() <= bound


def test_wrong_number_of_levels():
    with pytest.raises(ValueError, match="2 source maps but 3 levels"):
        SSDHead([8, 16], [4, 6, 4], 3)
    with pytest.raises(ValueError, match="2 feature maps for a head of 3 levels"):
        SSDHead([8, 16, 4], [4, 6, 4], 3)(FEATURES[:2])
