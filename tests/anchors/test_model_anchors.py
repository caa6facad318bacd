"""The anchors ``model_anchors`` returns are exactly those the detector's forward produces
(and, for the RPN, those its target builder keeps), with the detector's training matcher."""
import pytest
import torch

from anchordet.anchors.grid import anchors_inside
from anchordet.anchors.model_anchors import detector_anchors, model_anchors
from anchordet.detectors.retinanet import retinanet_resnet_fpn
from anchordet.structures.image_batch import ImageBatch


@pytest.fixture(scope="module")
def retinanet():
    return retinanet_resnet_fpn(18, 3, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=1,
                                anchor_base_sizes=(16, 32, 64, 128, 256)).eval()


def _forward_anchors(model, size):
    batch = ImageBatch.from_images([torch.zeros(3, *size)], getattr(model, "size_divisible", 1))
    with torch.no_grad():
        return model(batch.tensor).anchors


@pytest.mark.parametrize("size", [(128, 128), (100, 75), (33, 130)])
def test_retinanet_anchors_equal_forward(retinanet, size):
    anchors = model_anchors(retinanet, size)
    assert torch.equal(anchors.boxes, _forward_anchors(retinanet, size))
    assert anchors.kept is None and anchors.matcher is retinanet.target_builder.matcher
    assert anchors.image_size == size


def test_ssd_anchors_equal_forward_and_size_is_checked():
    from anchordet.detectors.ssd import ssd_digits

    model = ssd_digits(10).eval()
    anchors = model_anchors(model, (128, 128))
    assert torch.equal(anchors.boxes, _forward_anchors(model, (128, 128)))
    assert anchors.matcher.low_quality == "force"
    with pytest.raises(ValueError, match="128x128"):
        model_anchors(model, (128, 100))


@pytest.mark.parametrize("size", [(200, 150), (97, 131)])
def test_rpn_anchors_are_the_inside_anchors_of_forward(size):
    from anchordet.detectors.faster_rcnn import faster_rcnn_resnet18_c4

    model = faster_rcnn_resnet18_c4(3, backbone_width=8, anchor_sizes=(32, 64, 128)).eval()
    full = _forward_anchors(model, size)
    anchors = model_anchors(model, size)
    assert torch.equal(anchors.boxes, full[anchors_inside(full, size, model.rpn.target_builder.allowed_border)])
    assert anchors.matcher.high_threshold == 0.7 and int((anchors.kept >= 0).sum()) == len(anchors.boxes)


def test_feature_sizes_leave_the_model_untouched(retinanet):
    weight = retinanet.head.cls_logits.weight if hasattr(retinanet.head, "cls_logits") else next(retinanet.parameters())
    before = weight.detach().clone()
    detector_anchors(retinanet).at((64, 64))
    assert weight.device.type == "cpu" and torch.equal(weight.detach(), before)


def test_unsupported_model():
    with pytest.raises(ValueError, match="RetinaNet, SSD and Faster R-CNN"):
        detector_anchors(torch.nn.Linear(2, 2))
