"""The anchors the analysis gets from a detector's ``training_anchors`` are exactly those its
forward produces (and, for the RPN, those its target builder keeps), with its training matcher."""
import pytest
import torch

from anchordet.anchors.grid import anchors_inside
from anchordet.analysis.anchors.model_anchors import detector_anchors
from anchordet.detectors.retinanet import retinanet_resnet_fpn
from anchordet.structures.image_batch import ImageBatch
from helpers import preset_model


@pytest.fixture(scope="module")
def retinanet():
    return retinanet_resnet_fpn(18, 3, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=1,
                                anchor_base_sizes=(16, 32, 64, 128, 256)).eval()


def model_anchors(model, factory, size):
    return detector_anchors(model, factory, size).at(size)


def _forward_anchors(model, size):
    batch = ImageBatch.from_images([torch.zeros(3, *size)], getattr(model, "size_divisible", 1))
    with torch.no_grad():
        return model(batch.tensor).anchors


@pytest.mark.parametrize("size", [(128, 128), (100, 75), (33, 130)])
def test_retinanet_anchors_equal_forward(retinanet, size):
    anchors = model_anchors(retinanet, "retinanet_resnet_fpn", size)
    assert torch.equal(anchors.boxes, _forward_anchors(retinanet, size))
    assert anchors.kept is None and anchors.matcher is retinanet.target_builder.matcher
    assert anchors.image_size == size


def test_ssd_anchors_equal_forward_and_size_is_checked():
    model = preset_model("ssd_digits").eval()
    anchors = model_anchors(model, "ssd_vgg16", (128, 128))
    assert torch.equal(anchors.boxes, _forward_anchors(model, (128, 128)))
    assert anchors.matcher.low_quality == "force"
    with pytest.raises(ValueError, match="128x128"):
        detector_anchors(model, "ssd_vgg16", (128, 128)).at((128, 100))


@pytest.mark.parametrize("size", [(200, 150), (97, 131)])
def test_rpn_anchors_are_the_inside_anchors_of_forward(size):
    from anchordet.detectors.faster_rcnn import faster_rcnn_resnet18_c4

    model = faster_rcnn_resnet18_c4(3, backbone_width=8, anchor_sizes=(32, 64, 128)).eval()
    full = _forward_anchors(model, size)
    anchors = model_anchors(model, "faster_rcnn_resnet_c4", size)
    assert torch.equal(anchors.boxes, full[anchors_inside(full, size, model.rpn.target_builder.allowed_border)])
    assert anchors.matcher.high_threshold == 0.7 and int((anchors.kept >= 0).sum()) == len(anchors.boxes)


def test_feature_sizes_leave_the_model_untouched():
    """The shape-only (meta) forward of ``training_anchors`` touches no weight and no BN
    statistic, even in training mode with trainable BN."""
    model = retinanet_resnet_fpn(18, 3, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=1,
                                 frozen_bn=False).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    detector_anchors(model, "retinanet_resnet_fpn", (64, 64)).at((96, 64))
    after = model.state_dict()
    assert model.training and all(after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in before.items())


def test_unsupported_model():
    with pytest.raises(ValueError, match="RetinaNet, SSD and Faster R-CNN"):
        detector_anchors(torch.nn.Linear(2, 2), "linear", (64, 64))
