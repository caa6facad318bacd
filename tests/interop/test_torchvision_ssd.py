"""torchvision ssd300_vgg16 <-> anchordet SSD: same detections on the same 300 x 300 input
(torchvision's fixed-size resize leaves it unchanged), both directions.

torchvision computes its default boxes in float32 relative units, ours in float64 pixels; they
differ by at most one float32 ulp (2^-15 = 3.05e-5 px at 256..512 px), which is why the random
box deltas are kept modest (as a trained model's are): decoded boxes then differ by about as
much, well inside 1e-4.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torchvision.models.detection import ssd300_vgg16

from anchordet.config.inference import InferenceSettings
from anchordet.interop.torchvision import (
    TORCHVISION_SSD_MEAN,
    UNUSED_LOGIT_BIAS,
    _tv_default_boxes,
    coco_categories,
    from_torchvision,
)
from anchordet.interop.torchvision_models import to_torchvision

COCO_IDS, _ = coco_categories()
UNUSED = [i for i in range(1, 91) if i not in COCO_IDS]  # ids COCO never used (0 is the background)
BOXES_PER_LOCATION = [4, 6, 6, 6, 4, 4]


def randomize_heads(heads_cls, heads_box, generator, channels=None):
    """Scores spread over 0.01..0.95, box deltas small; torchvision-unused labels never score."""
    with torch.no_grad():
        for conv, boxes in zip(heads_cls, BOXES_PER_LOCATION):
            conv.weight.mul_(0.3)
            conv.bias.normal_(0, 1, generator=generator)
            if channels is not None:
                conv.weight.view(boxes, channels, -1)[:, UNUSED] = 0
                conv.bias.view(boxes, channels)[:, UNUSED] = UNUSED_LOGIT_BIAS
        for conv in heads_box:
            conv.weight.mul_(0.1)
            conv.bias.normal_(0, 0.5, generator=generator)


@pytest.fixture(scope="module")
def tv_model():
    torch.manual_seed(0)
    model = ssd300_vgg16(weights=None, weights_backbone=None).eval()
    with torch.no_grad():
        model.backbone.scale_weight.uniform_(10, 30)  # the L2Norm scale must map, not just stay 20
    randomize_heads(model.head.classification_head.module_list, model.head.regression_head.module_list,
                    torch.Generator().manual_seed(0), channels=91)
    return model


@pytest.fixture(scope="module")
def converted(tv_model):
    return from_torchvision(tv_model)


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 3, 300, 300, generator=torch.Generator().manual_seed(1))


def assert_same_detections(theirs: dict, ours, box_tol=1e-4, score_tol=1e-5):
    labels = torch.tensor(COCO_IDS)[ours.labels]
    assert len(theirs["boxes"]) == len(ours.boxes) >= 50
    order = torch.argsort(theirs["scores"], descending=True, stable=True)
    assert torch.equal(order, torch.arange(len(order)))  # torchvision's are sorted, as ours
    assert torch.equal(theirs["labels"], labels)
    assert (theirs["boxes"] - ours.boxes).abs().max() <= box_tol
    assert (theirs["scores"] - ours.scores).abs().max() <= score_tol


def test_config_and_normalisation(converted):
    args = converted.config.args
    assert converted.config.factory == "ssd_vgg16" and args["num_classes"] == 80 and args["image_size"] == 300
    # torchvision feeds 0..255 pixels minus a mean: (x - mean) / (1 / 255) on [0, 1] inputs
    assert args["pixel_mean"] == list(TORCHVISION_SSD_MEAN) and args["pixel_std"] == [1 / 255] * 3
    assert (args["score_thresh"], args["nms_thresh"], args["topk_candidates"], args["max_detections"]) == (
        0.01, 0.45, 400, 200)
    assert converted.inference == InferenceSettings("fixed", fixed_size=300, class_names=converted.class_names,
                                                    category_ids=converted.category_ids)


def test_default_boxes_within_one_ulp(converted, tv_model):
    model = converted.model
    ours = torch.cat(model.default_boxes.default_boxes([(s, s) for s in model.backbone.feature_sizes(300)], (300, 300)))
    assert ours.shape == (8732, 4)
    assert (ours - _tv_default_boxes(tv_model)).abs().max() <= 2 ** -15


def test_background_moves_from_first_to_last_logit(converted, tv_model):
    ours = converted.model.head.classification[0].bias.view(4, 81)
    theirs = tv_model.head.classification_head.module_list[0].bias.view(4, 91)
    assert torch.equal(ours[:, 80], theirs[:, 0])
    assert torch.equal(ours[:, :80], theirs[:, COCO_IDS])
    assert torch.equal(converted.model.backbone.l2norm.weight, tv_model.backbone.scale_weight)


def test_torchvision_to_ours_same_detections(tv_model, converted, image):
    with torch.no_grad():
        theirs = tv_model(list(image))[0]
    assert_same_detections(theirs, converted.model.predict(image)[0])


def test_ours_to_torchvision_same_detections(converted, image):
    ours = copy.deepcopy(converted.model)
    randomize_heads(ours.head.classification, ours.head.regression, torch.Generator().manual_seed(2))
    tv_back = to_torchvision(ours, COCO_IDS)
    with torch.no_grad():
        theirs = tv_back(list(image))[0]
    assert_same_detections(theirs, ours.predict(image)[0])
    for channels in tv_back.head.classification_head.module_list:
        assert torch.all(channels.bias.view(-1, 91)[:, UNUSED] == UNUSED_LOGIT_BIAS)



def test_to_torchvision_builds_what_ssd300_vgg16_builds(converted, tv_model):
    """to_torchvision assembles ssd300_vgg16 step by step (VGG on the meta device, see
    _tv_ssd): same keys, shapes and values as the builder's model it came from."""
    back = to_torchvision(converted.model, COCO_IDS).state_dict()
    theirs = tv_model.state_dict()
    assert set(back) == set(theirs)
    assert all(torch.equal(back[k], v) for k, v in theirs.items())


def test_retinanet_weights_given_as_ssd_are_refused(tv_model):
    state = {k: v for k, v in tv_model.state_dict().items() if not k.startswith("backbone.extra.4")}
    with pytest.raises(ValueError, match=r"missing \(4\): backbone.extra.4.0.bias"):
        from_torchvision(state, "ssd300_vgg16")
    retina_like = {"head.classification_head.cls_logits.weight": torch.zeros(9 * 91, 1, 3, 3)}
    with pytest.raises(ValueError, match="retinanet_resnet50_fpn"):
        from_torchvision(retina_like, "ssd300_vgg16")


def test_the_dropped_labels_leave_the_softmax_denominator_exactly():
    """The 80-class conversion keeps 81 of torchvision's 91 logits (80 classes + background): the
    10 COCO ids that were never used leave the softmax. Each of our probabilities is then
    torchvision's divided by (1 - the dropped labels' probability), exactly (issue 19 item 13;
    said in docs/export.md and by `anchordet convert`). On untrained weights, whose unused logits
    are as large as the others, that raises every score by about 91 / 81 = 1.12; on weights whose
    unused logits never fire (torchvision's trained COCO SSD, the tv_model fixture) by nothing."""
    torch.manual_seed(0)
    untrained = ssd300_vgg16(weights=None, weights_backbone=None).eval()
    randomize_heads(untrained.head.classification_head.module_list, untrained.head.regression_head.module_list,
                    torch.Generator().manual_seed(0))  # the unused ids' logits are not suppressed
    ours = from_torchvision(untrained).model
    image = torch.rand(1, 3, 300, 300, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tensors = untrained.transform(list(image))[0].tensors
        theirs = torch.softmax(untrained.head(list(untrained.backbone(tensors).values()))["cls_logits"], -1)[0]
        mine = torch.softmax(ours(image).cls_logits, -1)[0]  # (A, 81), background last
    assert theirs.shape == (8732, 91) and mine.shape == (8732, 81)
    dropped = theirs[:, UNUSED].sum(-1, keepdim=True)  # (A, 1)
    expected = torch.cat([theirs[:, COCO_IDS], theirs[:, :1]], dim=1) / (1 - dropped)
    torch.testing.assert_close(mine, expected, rtol=1e-5, atol=1e-7)
    raised = (1 / (1 - dropped)).mean().item()
    assert 1.08 < raised < 1.16  # the ~12% of the issue


def test_convert_says_that_the_dropped_labels_leave_the_softmax(tv_model, tmp_path, capsys):
    from anchordet.cli.main import main

    source = tmp_path / "ssd300_tv.pth"
    torch.save(tv_model.state_dict(), source)
    assert main(["convert", str(source), "--arch", "ssd300_vgg16", "--out", str(tmp_path / "ssd.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "the 10 torchvision labels not kept leave the softmax" in out
