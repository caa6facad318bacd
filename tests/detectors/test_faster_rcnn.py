import pytest
import torch

from anchordet import Targets
from anchordet.anchors.grid import anchors_inside
from anchordet.data.shapes import make_scenes
from anchordet.detectors.faster_rcnn import (FasterRCNN, FasterRCNNOutputs, faster_rcnn_resnet18_c4,
                                             faster_rcnn_resnet50_c4, faster_rcnn_vgg16)
from anchordet.postprocess.proposals import ProposalSettings
from helpers import assert_overfits

# Small enough for CPU tests: ResNet-18-C4 at 1/8 width, anchors for 20-44 px boxes, few RoIs.
TINY = dict(backbone_width=8, frozen_bn=False, trainable_layers=5, anchor_sizes=(16, 32, 64),
            rpn_allowed_border=None, rpn_min_size=0.0, rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=128,
            rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=50, roi_batch_size_per_image=16,
            roi_pool="align", roi_output_size=6)


def tiny(num_classes=3, **options):
    torch.manual_seed(0)
    return faster_rcnn_resnet18_c4(num_classes, **(TINY | options))


def test_seed_003_numbers():
    # VGG16-BN at 1/16 width (the counts do not depend on the width); seed 003's 800x800 image
    # and its two gt boxes (y1, x1, y2, x2 there; x1, y1, x2, y2 here) of classes 6 and 8.
    torch.manual_seed(0)
    model = faster_rcnn_vgg16(20, backbone_width=4, fc_channels=32)
    image = torch.zeros(1, 3, 800, 800)
    targets = [Targets(torch.tensor([[30.0, 20, 500, 400], [400, 300, 600, 500]]), torch.tensor([6, 8]))]
    with torch.no_grad():
        out = model(image)
        assert out.features.shape == (1, 32, 50, 50)
        assert out.anchors.shape == (22500, 4) and int(anchors_inside(out.anchors, (800, 800)).sum()) == 8940
        assert out.rpn_objectness.shape == (1, 22500) and out.rpn_box_deltas.shape == (1, 22500, 4)
        proposals = model.rpn.proposals(model.rpn_outputs(out), [(800, 800)], model.rpn.train_proposals)
        assert 0 < len(proposals.boxes[0]) <= 2000
        sampled = model.roi_target_builder.build(proposals.boxes, targets, 20, torch.Generator().manual_seed(0))
        assert len(sampled.proposals[0]) == 128 and sampled.labels.shape == (128,)
        assert int((sampled.labels < 20).sum()) <= 128 // 4
        logits, deltas = model.roi_outputs(out.features, sampled.proposals)
    assert logits.shape == (128, 21) and deltas.shape == (128, 84)
    assert model.roi_pooler.kind == "pool" and model.roi_pooler.output_size == 7


def test_seed_004_numbers():
    with torch.device("meta"):  # shapes only: ResNet-50 without initialising or running it
        model = faster_rcnn_resnet50_c4(20)
        out = model(torch.empty(1, 3, 800, 608))
        assert out.features.shape == (1, 1024, 800 // 16, 608 // 16)
        assert model.roi_pooler.output_size == 14
        logits, deltas = model.roi_head(torch.empty(128, 1024, 14, 14))
    assert logits.shape == (128, 21) and deltas.shape == (128, 84)
    keys = model.state_dict().keys()
    assert any(k.startswith("roi_head.layer4.") for k in keys) and not any(k.startswith("backbone.layer4") for k in keys)


def test_forward_same_type_in_train_and_eval():
    model = tiny()
    x = torch.rand(1, 3, 64, 64)
    assert type(model.train()(x)) is type(model.eval()(x)) is FasterRCNNOutputs


def test_no_gt_box_losses_zero_class_losses_positive():
    model = tiny()
    losses = model.loss([torch.rand(3, 64, 64), torch.rand(3, 48, 80)], [Targets(), Targets()])
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_box", "loss_roi_cls", "loss_roi_box"}
    assert losses["loss_rpn_box"].item() == 0.0 and losses["loss_roi_box"].item() == 0.0
    assert losses["loss_rpn_cls"].item() > 0 and losses["loss_roi_cls"].item() > 0


def test_no_proposals_and_no_gt():
    model = tiny(rpn_min_size=1000.0)  # every proposal is removed
    losses = model.loss([torch.rand(3, 64, 64)], [Targets()])
    assert losses["loss_roi_cls"].item() == 0.0 and losses["loss_rpn_cls"].item() > 0
    sum(losses.values()).backward()
    assert len(model.predict([torch.rand(3, 64, 64)])[0]) == 0


def _backbone_grad(model, loss):
    model.zero_grad()
    loss.backward(retain_graph=True)
    return model.backbone.conv1.weight.grad.abs().sum().item()


def test_gradients_reach_the_backbone_through_rpn_and_roi_head():
    model = tiny().eval()  # validation loss in eval mode; gradients as in training
    images, targets = make_scenes(2, 64, min_side=16, max_side=30)
    losses = model.loss(images, targets, generator=torch.Generator().manual_seed(0))
    assert losses["loss_rpn_box"].item() > 0 and losses["loss_roi_box"].item() > 0
    for name in losses:
        assert _backbone_grad(model, losses[name]) > 0, name
    model.zero_grad()
    losses["loss_roi_box"].backward(retain_graph=True)
    assert model.roi_head.predictor.bbox_pred.weight.grad.abs().sum() > 0


def test_loss_is_reproducible_with_a_generator():
    model = tiny().eval()
    images, targets = make_scenes(2, 64, min_side=16, max_side=30)
    first = model.loss(images, targets, generator=torch.Generator().manual_seed(5))
    second = model.loss(images, targets, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_different_sizes_and_empty_image_in_one_batch():
    model = tiny().eval()
    images = [torch.rand(3, 70, 50), torch.rand(3, 40, 90)]
    targets = [Targets(torch.tensor([[5.0, 5, 30, 40]]), torch.tensor([1])), Targets()]
    losses = model.loss(images, targets)
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_roi_box"] > 0
    detections = model.predict(images, postprocess=model.postprocess.__class__(score_thresh=0.0))
    assert len(detections) == 2 and all(len(d) > 0 for d in detections)
    for det, (h, w) in zip(detections, [(70, 50), (40, 90)]):
        assert (det.boxes[:, 2] <= w).all() and (det.boxes[:, 3] <= h).all()
        assert det.labels.dtype == torch.int64 and ((det.labels >= 0) & (det.labels < 3)).all()


def test_predict_uses_test_proposals_unless_overridden():
    model = tiny().eval()
    calls = []
    original = model.rpn.flat_proposals  # what predict and (through rpn.proposals) loss call
    model.rpn.flat_proposals = lambda out, sizes, settings: calls.append(settings) or original(out, sizes, settings)
    model.predict(torch.rand(1, 3, 64, 64))
    model.predict(torch.rand(1, 3, 64, 64), proposal_settings=ProposalSettings(20, 5))
    model.loss(torch.rand(1, 3, 64, 64), [Targets()])
    assert calls == [ProposalSettings(300, 50), ProposalSettings(20, 5), ProposalSettings(600, 128)]


def test_overfits_a_handful_of_images():
    model = tiny()
    images, targets = make_scenes(4, 96)
    assert_overfits(model, images, targets, max_steps=150, check_every=10, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("targets,message", [
    ([Targets(torch.tensor([[10.0, 10, 5, 20]]), torch.tensor([0]))], "image 0, box 0: [10, 10, 5, 20] is degenerate"),
    ([Targets(torch.tensor([[1.0, 1, 5, 5]]), torch.tensor([3]))], "image 0, box 0: label 3 outside 0..2"),
    ([], "got 0 Targets for 1 images"),
])
def test_bad_targets(targets, message):
    with pytest.raises(ValueError) as err:
        tiny().loss(torch.rand(1, 3, 32, 32), targets)
    assert message in str(err.value)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_vgg16_factory_options(batch_norm):
    with torch.device("meta"):
        model = faster_rcnn_vgg16(20, batch_norm=batch_norm, rpn_post_nms_top_n_test=1000, box_nms_thresh=0.3)
    assert isinstance(model, FasterRCNN)
    assert model.roi_head.classifier[0].in_features == 512 * 7 * 7 and model.roi_head.classifier[3].out_features == 4096
    assert model.rpn.test_proposals == ProposalSettings(6000, 1000) and model.postprocess.nms_thresh == 0.3
    assert any("running_var" in k for k in model.state_dict()) == batch_norm
    assert not any(k.startswith("backbone.classifier") for k in model.state_dict())
    # Ren et al. 2015 Sec. 4.1: conv1 and conv2 frozen, conv3_1 and up trained
    assert not model.backbone.features[0].weight.requires_grad
    assert model.backbone.features[-3 if batch_norm else -2].weight.requires_grad


def test_backbone_weights_file_is_loaded(tmp_path):
    source = tiny()
    path = tmp_path / "resnet18_c4.pth"
    from anchordet.backbones.resnet import ResNet
    torch.manual_seed(1)
    backbone = ResNet(18, ("c4",), width=8)
    torch.save(backbone.state_dict(), path)
    loaded = faster_rcnn_resnet18_c4(3, backbone_width=8, backbone_weights=str(path))
    assert torch.equal(loaded.backbone.conv1.weight, backbone.conv1.weight)
    assert torch.equal(loaded.roi_head.layer4[0].conv1.weight, backbone.layer4[0].conv1.weight)
    assert not torch.equal(source.backbone.conv1.weight, backbone.conv1.weight)
