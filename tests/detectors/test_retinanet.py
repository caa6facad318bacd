import pytest
import torch

from anchordet import Targets
from anchordet.detectors.retinanet import RetinaNet, retinanet_resnet18_fpn, retinanet_resnet50_fpn
from anchordet.structures.outputs import DenseOutputs
from anchordet.data.shapes import make_scenes
from helpers import assert_overfits

TINY = dict(backbone_width=16, fpn_channels=32, head_channels=32, head_num_convs=2,
            anchor_base_sizes=(16, 32, 64, 128, 256), trainable_layers=5, frozen_bn=False)


def tiny(num_classes=3):
    torch.manual_seed(0)
    return retinanet_resnet18_fpn(num_classes, **TINY)


def test_seed_001_shapes():
    model = retinanet_resnet50_fpn(num_classes=20).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 640, 832))
    assert isinstance(out, DenseOutputs)
    assert out.num_anchors_per_level == [80 * 104 * 9, 40 * 52 * 9, 20 * 26 * 9, 10 * 13 * 9, 5 * 7 * 9]
    assert out.anchors.shape == (99765, 4)
    assert out.box_deltas.shape == (2, 99765, 4) and out.cls_logits.shape == (2, 99765, 20)


def test_forward_same_type_in_train_and_eval():
    model = tiny()
    x = torch.rand(1, 3, 64, 64)
    assert type(model.train()(x)) is type(model.eval()(x)) is DenseOutputs


def test_no_gt_box_loss_zero_class_loss_positive():
    model = tiny()
    losses = model.loss([torch.rand(3, 64, 64)], [Targets()])
    assert losses["loss_box"].item() == 0.0
    assert losses["loss_cls"].item() > 0


def test_validation_loss_in_eval_mode_and_gradients():
    model = tiny().eval()
    images, targets = make_scenes(2, 64, min_side=16, max_side=30)
    losses = model.loss(images, targets)
    assert set(losses) == {"loss_cls", "loss_box"} and all(v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_different_sizes_and_empty_image_in_one_batch():
    model = tiny().eval()
    images = [torch.rand(3, 70, 50), torch.rand(3, 40, 90)]
    targets = [Targets(torch.tensor([[5.0, 5, 30, 40]]), torch.tensor([1])), Targets()]
    losses = model.loss(images, targets)
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_box"] > 0
    detections = model.predict(images)
    assert len(detections) == 2
    for det, (h, w) in zip(detections, [(70, 50), (40, 90)]):
        assert (det.boxes[:, 2] <= w).all() and (det.boxes[:, 3] <= h).all()
        assert det.labels.dtype == torch.int64 and ((det.labels >= 0) & (det.labels < 3)).all()


def test_overfits_a_handful_of_images():
    model = tiny()
    images, targets = make_scenes(4, 96)
    assert_overfits(model, images, targets, max_steps=300, check_every=20)


@pytest.mark.parametrize("targets,message", [
    ([Targets(torch.tensor([[10.0, 10, 5, 20]]), torch.tensor([0]))], "image 0, box 0: [10, 10, 5, 20] is degenerate"),
    ([Targets(torch.tensor([[1.0, 1, 5, 5]]), torch.tensor([3]))], "image 0, box 0: label 3 outside 0..2"),
    ([Targets(torch.tensor([[1.0, 1, float("inf"), 5]]), torch.tensor([0]))], "non-finite"),
    ([], "got 0 Targets for 1 images"),
])
def test_bad_targets(targets, message):
    with pytest.raises(ValueError) as err:
        tiny().loss(torch.rand(1, 3, 32, 32), targets)
    assert message in str(err.value)


def test_bad_images():
    with pytest.raises(ValueError, match="expected a float tensor"):
        tiny().predict(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="got a tensor of shape \\(1, 32, 32\\)"):
        tiny().predict(torch.zeros(1, 32, 32))


def test_public_factories():
    import anchordet
    assert anchordet.retinanet_resnet50_fpn is retinanet_resnet50_fpn
    assert isinstance(anchordet.retinanet_resnet101_fpn(2, head_num_convs=1), RetinaNet)
