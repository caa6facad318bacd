import torch
from torchvision.models.detection.rpn import RPNHead as TorchvisionRPNHead
from torchvision.models.detection.rpn import permute_and_flatten

from anchordet.heads.rpn import RPNHead


def test_seed_003_shapes():
    # seed 003: conv5_3 (1, 512, 50, 50) of an 800x800 image; 9 anchors per location
    with torch.device("meta"):  # shapes only
        head = RPNHead(512, 9, 512)
        objectness, deltas = head(torch.empty(1, 512, 50, 50))
    assert objectness.shape == (1, 50 * 50 * 9) == (1, 22500)
    assert deltas.shape == (1, 22500, 4)


def test_same_outputs_as_torchvision_head():
    torch.manual_seed(0)
    theirs = TorchvisionRPNHead(8, 3)
    ours = RPNHead(8, 3, channels=8)
    ours.conv.load_state_dict(theirs.conv[0][0].state_dict())
    ours.cls_logits.load_state_dict(theirs.cls_logits.state_dict())
    ours.bbox_pred.load_state_dict(theirs.bbox_pred.state_dict())
    x = torch.randn(2, 8, 5, 7)
    objectness, deltas = ours(x)
    (logits,), (box,) = theirs([x])
    torch.testing.assert_close(objectness, permute_and_flatten(logits, 2, 3, 1, 5, 7).squeeze(-1))
    torch.testing.assert_close(deltas, permute_and_flatten(box, 2, 3, 4, 5, 7))


def test_anchor_order_is_row_column_anchor():
    head = RPNHead(1, 2, channels=1)
    with torch.no_grad():
        for conv in (head.conv, head.cls_logits, head.bbox_pred):
            conv.weight.zero_()
            conv.bias.zero_()
        head.conv.weight[0, 0, 1, 1] = 1.0  # hidden = relu(input)
        head.cls_logits.weight[:, 0, 0, 0] = torch.tensor([1.0, 10.0])  # anchor a: (1 + 9a) * x
    x = torch.arange(6.0).reshape(1, 1, 2, 3)  # value = 3 * row + column
    objectness, _ = head(x)
    # index (row * 3 + column) * 2 + a
    expected = [v * s for v in range(6) for s in (1.0, 10.0)]
    assert objectness[0].tolist() == expected


def test_initialisation():
    torch.manual_seed(0)
    head = RPNHead(64, 9, 256)
    for conv in (head.conv, head.cls_logits, head.bbox_pred):
        assert abs(conv.weight.std().item() - 0.01) < 0.002 and conv.bias.abs().max() == 0
