import torch

from anchordet.backbones.resnet import ResNet
from anchordet.backbones.vgg import vgg_fc_layers
from anchordet.heads.roi_box import ResNetC4Head, VGGBoxHead


def test_seed_003_vgg_head_shapes():
    # 128 RoIs pooled to 512 x 7 x 7, fc 4096-4096, 20 VOC classes + background. On the meta
    # device: shapes are computed, the 100M-weight fc6 is neither initialised nor run.
    with torch.device("meta"):
        head = VGGBoxHead(vgg_fc_layers(512 * 7 * 7, 4096), 4096, num_classes=20)
        logits, deltas = head(torch.empty(128, 512, 7, 7))
    assert logits.shape == (128, 21) and deltas.shape == (128, 21 * 4) == (128, 84)


def test_seed_004_c4_head_on_14x14_rois():
    with torch.device("meta"):
        backbone = ResNet(50, ("c4",))
        head = ResNetC4Head(backbone.stage("c5"), backbone.stage_channels["c5"], num_classes=20)
        pooled = torch.empty(128, 1024, 14, 14)
        assert head.layer4(pooled).shape == (128, 2048, 7, 7)  # layer4's stride 2
        logits, deltas = head(pooled)
    assert logits.shape == (128, 21) and deltas.shape == (128, 84)


def test_c4_head_is_layer4_then_average_pooling():
    torch.manual_seed(0)
    backbone = ResNet(18, ("c4",), width=8)
    head = ResNetC4Head(backbone.stage("c5"), backbone.stage_channels["c5"], num_classes=3).eval()
    pooled = torch.randn(2, 32, 14, 14)
    with torch.no_grad():
        logits, deltas = head(pooled)
        features = backbone.layer4(pooled)  # (2, 64, 7, 7)
        expected = features.mean(dim=(2, 3)) @ head.predictor.cls_score.weight.t() + head.predictor.cls_score.bias
    assert features.shape == (2, 64, 7, 7) and deltas.shape == (2, 16)
    torch.testing.assert_close(logits, expected)


def test_dropout_only_in_train_and_gradients_reach_input():
    torch.manual_seed(0)
    head = VGGBoxHead(vgg_fc_layers(4 * 2 * 2, 32), 32, num_classes=3)
    x = torch.randn(5, 4, 2, 2, requires_grad=True)
    head.eval()
    assert torch.equal(head(x).class_logits, head(x).class_logits)
    head.train()
    assert not torch.equal(head(x).class_logits, head(x).class_logits)
    logits, deltas = head(x)
    (logits.sum() + deltas.sum()).backward()
    assert x.grad.abs().sum() > 0


def test_initialisation():
    torch.manual_seed(0)
    head = VGGBoxHead(vgg_fc_layers(16, 512), 512, num_classes=80)
    # Girshick 2015 Sec. 2.3: scores N(0, 0.01), boxes N(0, 0.001), zero biases
    assert abs(head.predictor.cls_score.weight.std().item() - 0.01) < 0.001
    assert abs(head.predictor.bbox_pred.weight.std().item() - 0.001) < 0.0001
    assert head.predictor.cls_score.bias.abs().max() == 0 and head.predictor.bbox_pred.bias.abs().max() == 0
