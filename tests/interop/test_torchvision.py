"""torchvision <-> anchordet weight conversion, checked against torchvision's own models.

The peer is torchvision's RetinaNet (and SSD in test_torchvision_ssd.py) with random weights: the
converted detector must give the same detections on the same input. Inputs are 128 x 256: sides
that are multiples of 128, so that torchvision's P6/P7 anchor strides (padded size // feature
size) equal ours and nothing is padded, and torchvision's resize is set to leave them unchanged
(min_size 128, max_size 256 gives a scale of min(128/128, 256/256) = 1).
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torchvision.models import resnet18, resnet50
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNet as TVRetinaNet
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from anchordet.config.inference import InferenceSettings
from anchordet.config.schema import ModelConfig
from anchordet.interop.torchvision import (
    TORCHVISION_RETINANET_ANCHOR_SIZES,
    UNUSED_LOGIT_BIAS,
    coco_categories,
    from_torchvision,
)
from anchordet.interop.torchvision_models import to_torchvision

COCO_IDS, COCO_NAMES = coco_categories()
UNUSED = [i for i in range(91) if i not in COCO_IDS]  # background 0 and the 10 ids COCO never used
SIZE = (128, 256)


def tv_retinanet(eps: float, seed: int, small: bool = False) -> TVRetinaNet:
    """torchvision's retinanet_resnet50_fpn layout (frozen BN, P6 from P5, 91 logits) with random
    weights that give many detections: BN statistics drawn so that features stay O(10..100),
    class biases around sigmoid(-3) = 0.05, the score threshold.
    ``small``: ResNet-18 and a 16-channel FPN (torchvision's RetinaNet class takes any backbone),
    for the tests that only need the layout."""
    if small:
        body = resnet18(weights=None, norm_layer=FrozenBatchNorm2d)
        backbone = BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"}, [128, 256, 512], 16,
                                   extra_blocks=LastLevelP6P7(16, 16))
    else:
        body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    model = TVRetinaNet(backbone, 91, min_size=SIZE[0], max_size=SIZE[1]).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.eps = eps
                n = module.running_var.numel()
                # Small variances make eps matter (1e-5 is 1-10% of them).
                module.running_var.copy_(torch.empty(n).uniform_(1e-4, 1e-3, generator=generator))
                module.weight.copy_(module.running_var.sqrt() * torch.empty(n).uniform_(0.8, 1.2, generator=generator))
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
        cls_logits = model.head.classification_head.cls_logits
        cls_logits.weight.normal_(0, 0.03, generator=generator)
        cls_logits.bias.normal_(-3, 1, generator=generator)
        # Our detector has no logits for torchvision's unused labels: they must never score here.
        cls_logits.weight.view(9, 91, -1)[:, UNUSED] = 0
        cls_logits.bias.view(9, 91)[:, UNUSED] = UNUSED_LOGIT_BIAS
        model.head.regression_head.bbox_reg.bias.normal_(0, 0.2, generator=generator)
    return model


@pytest.fixture(scope="module")
def tv_model() -> TVRetinaNet:
    return tv_retinanet(eps=1e-5, seed=0)


@pytest.fixture(scope="module")
def small_tv_model() -> TVRetinaNet:
    return tv_retinanet(eps=1e-5, seed=4, small=True)


@pytest.fixture(scope="module")
def converted(tv_model):
    return from_torchvision(tv_model)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, *SIZE, generator=torch.Generator().manual_seed(1))


def assert_same_detections(theirs: dict, ours, category_ids=None, box_tol=1e-4, score_tol=1e-5, min_count=50):
    """Every torchvision detection has exactly one of ours with the same label, a box within
    ``box_tol`` and a score within ``score_tol`` (order may differ only among near-ties)."""
    labels = ours.labels if category_ids is None else torch.tensor(category_ids)[ours.labels]
    assert len(theirs["boxes"]) == len(ours.boxes) >= min_count  # enough detections to mean something
    free = torch.ones(len(ours.boxes), dtype=torch.bool)
    for box, score, label in zip(theirs["boxes"], theirs["scores"], theirs["labels"]):
        close = (free & (labels == label) & ((ours.boxes - box).abs().amax(dim=1) <= box_tol)
                 & ((ours.scores - score).abs() <= score_tol))
        assert close.any(), f"no match for torchvision's {label.item()} {box.tolist()} {score.item():.6f}"
        free[torch.nonzero(close)[0, 0]] = False


def test_converted_config_reproduces_torchvision_settings(converted):
    args = converted.config.args
    assert converted.config.factory == "retinanet_resnet_fpn"
    assert args["depth"] == 50 and args["num_classes"] == 80 and args["p6_from"] == "p5"
    # int(32 * 2 ** (1/3)) = int(40.3) = 40, int(32 * 2 ** (2/3)) = int(50.8) = 50, ... (torchvision truncates)
    assert args["anchor_sizes"][0] == [32.0, 40.0, 50.0] and args["anchor_sizes"][4] == [512.0, 645.0, 812.0]
    assert [list(s) for s in TORCHVISION_RETINANET_ANCHOR_SIZES] == args["anchor_sizes"]
    assert args["anchor_offset"] == 0.0 and args["anchor_round_base"] is True
    assert args["max_detections"] == 300 and args["topk_candidates"] == 1000  # torchvision's, not the paper's 100
    assert converted.category_ids == COCO_IDS and len(COCO_IDS) == 80
    assert converted.class_names[0] == "person" and converted.class_names[-1] == "toothbrush"
    assert converted.inference == InferenceSettings("resize", min_size=SIZE[0], max_size=SIZE[1],
                                                    class_names=converted.class_names, category_ids=COCO_IDS)


def test_anchors_equal_torchvision_anchor_generator(converted, tv_model, image):
    feature_sizes = [(SIZE[0] // s, SIZE[1] // s) for s in (8, 16, 32, 64, 128)]
    theirs = AnchorGenerator(tuple(TORCHVISION_RETINANET_ANCHOR_SIZES), ((0.5, 1.0, 2.0),) * 5)(
        ImageList(image, [SIZE]), [torch.zeros(1, 1, h, w) for h, w in feature_sizes])[0]
    ours = torch.cat(converted.model.anchor_generator.grid_anchors(feature_sizes))
    assert torch.equal(ours, theirs)


def test_torchvision_to_ours_same_detections(tv_model, converted, image):
    with torch.no_grad():
        theirs = tv_model(list(image))[0]
    ours = converted.model.predict(image)[0]
    assert_same_detections(theirs, ours, converted.category_ids)


def test_inference_set_up_keeps_torchvision_detections_within_1e_3_px(tv_model, converted, image):
    """``anchordet.load`` / predict fold the frozen BNs into the convolutions and run channels_last
    (runtime.acceleration): float rounding moves boxes by up to ~1e-3 px (1e-4 without), scores
    stay within 1e-5; nothing else changes."""
    from anchordet.runtime.acceleration import accelerate_for_inference

    with torch.no_grad():
        theirs = tv_model(list(image))[0]
    fast = accelerate_for_inference(copy.deepcopy(converted.model), "cpu")
    assert fast.backbone.fold_bn and fast.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert_same_detections(theirs, fast.predict(image)[0], converted.category_ids, box_tol=1e-3, score_tol=1e-5)


@pytest.fixture(scope="module")
def ours_model(converted):
    """A detector that did not come from torchvision: the converted one with new random heads."""
    model = copy.deepcopy(converted.model)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        model.head.cls_output.weight.normal_(0, 0.03, generator=generator)
        model.head.cls_output.bias.normal_(-3, 1, generator=generator)
        model.head.box_output.bias.normal_(0, 0.2, generator=generator)
    return model


@pytest.fixture(scope="module")
def tv_back(ours_model):
    return to_torchvision(ours_model, COCO_IDS, min_size=SIZE[0], max_size=SIZE[1])


def test_ours_to_torchvision_same_detections(ours_model, tv_back, image):
    with torch.no_grad():
        theirs = tv_back(list(image))[0]
    assert_same_detections(theirs, ours_model.predict(image)[0], COCO_IDS)


def test_unused_torchvision_logits_never_score(tv_back):
    bias = tv_back.head.classification_head.cls_logits.bias.view(9, 91)
    weight = tv_back.head.classification_head.cls_logits.weight.view(9, 91, -1)
    assert torch.all(bias[:, UNUSED] == UNUSED_LOGIT_BIAS) and torch.all(weight[:, UNUSED] == 0)


def test_round_trip_restores_the_state(ours_model, tv_back):
    again = from_torchvision(tv_back).model.state_dict()
    for key, value in ours_model.state_dict().items():
        if key.endswith("running_var"):  # + 1e-5 - 1e-5 on the way: float rounding only
            assert torch.allclose(again[key], value, rtol=1e-6, atol=0), key
        else:
            assert torch.equal(again[key], value), key


def test_file_and_v1_keys_convert_like_the_model(small_tv_model, tmp_path):
    state = small_tv_model.state_dict()
    # torchvision < 0.13 head layout (RetinaNetHead v1: conv.{2i}), as the COCO file still has it.
    old = {k.replace(".conv.1.0.", ".conv.2.").replace(".conv.2.0.", ".conv.4.").replace(".conv.3.0.", ".conv.6.")
           .replace(".conv.0.0.", ".conv.0."): v for k, v in state.items()}
    assert "head.classification_head.conv.6.weight" in old
    path = tmp_path / "retinanet.pth"
    torch.save(old, path)
    from_file = from_torchvision(path, "retinanet_resnet50_fpn", bn_eps=1e-5)
    from_model = from_torchvision(small_tv_model)
    assert from_file.config.args["depth"] == 18 and from_file.config.args["fpn_channels"] == 16
    assert from_file.config == from_model.config  # the file gets torchvision's defaults, as the model has them
    for key, value in from_model.model.state_dict().items():
        assert torch.equal(from_file.model.state_dict()[key], value), key


def test_coco_eps_zero_is_folded_into_running_var(image):
    """torchvision's COCO RetinaNet runs its frozen BN with eps 0; ours has eps 1e-5 and moves
    running_var by -1e-5 instead. With variances of 1e-4..1e-3, ignoring that changes the
    ResNet features by percents; folding it leaves float rounding (~1e-7 per layer)."""
    tv_model = tv_retinanet(eps=0.0, seed=3, small=True)
    folded = from_torchvision(tv_model).model
    ignored = copy.deepcopy(folded)  # then undo the fold by hand
    with torch.no_grad():
        for name, module in ignored.backbone.named_modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.running_var.copy_(tv_model.backbone.body.get_submodule(name).running_var)
        normalized = (image - folded.pixel_mean.view(1, 3, 1, 1)) / folded.pixel_std.view(1, 3, 1, 1)
        theirs = list(tv_model.backbone.body(normalized).values())[-1]  # C5
        good = folded.backbone(normalized)[-1]
        bad = ignored.backbone(normalized)[-1]
    scale = theirs.abs().max()
    assert (good - theirs).abs().max() / scale < 1e-5
    assert (bad - theirs).abs().max() / scale > 1e-3


def test_custom_labels_select_logit_channels(small_tv_model):
    tv_model = small_tv_model
    converted = from_torchvision(tv_model, labels=[1, 3, 18], class_names=["person", "car", "dog"])
    assert converted.config.args["num_classes"] == 3 and converted.category_ids == [1, 3, 18]
    ours = converted.model.head.cls_output.bias.view(9, 3)
    theirs = tv_model.head.classification_head.cls_logits.bias.view(9, 91)
    assert torch.equal(ours, theirs[:, [1, 3, 18]])


def test_wrong_architecture_lists_what_does_not_match(small_tv_model):
    tv_model = small_tv_model
    state = {k: v for k, v in tv_model.state_dict().items() if k != "backbone.fpn.layer_blocks.1.0.bias"}
    with pytest.raises(ValueError) as missing:
        from_torchvision(state, "retinanet_resnet50_fpn")
    assert "missing (1): backbone.fpn.layer_blocks.1.0.bias" in str(missing.value)
    assert "nothing was converted" in str(missing.value)
    ssd_like = {"backbone.scale_weight": torch.ones(512), "backbone.features.0.weight": torch.ones(64, 3, 3, 3),
                **{f"head.classification_head.module_list.{i}.weight": torch.ones(4 * 91, 1, 3, 3) for i in range(6)}}
    with pytest.raises(ValueError, match="ssd300_vgg16"):
        from_torchvision(ssd_like, "retinanet_resnet50_fpn")
    extra = {**tv_model.state_dict(), "roi_heads.box_predictor.cls_score.weight": torch.ones(91, 1024)}
    with pytest.raises(ValueError, match=r"unexpected \(1\): roi_heads.box_predictor.cls_score.weight"):
        from_torchvision(extra, "retinanet_resnet50_fpn")
    with pytest.raises(ValueError, match="arch must be one of"):
        from_torchvision(tv_model.state_dict())


def test_to_torchvision_refuses_what_it_cannot_reproduce():
    paper = ModelConfig("retinanet_resnet_fpn", {"depth": 18, "num_classes": 3, "backbone_width": 64}).build()
    with pytest.raises(ValueError, match="anchor_offset=0, anchor_round_base=True"):
        to_torchvision(paper)
    with pytest.raises(ValueError, match="category_ids"):
        to_torchvision(paper, [1, 1, 2])


def test_builds_for_non_module_refused():
    with pytest.raises(ValueError, match="only torchvision RetinaNet"):
        from_torchvision(nn.Linear(2, 2))


def test_weights_enum_is_read_from_the_torch_hub_cache(small_tv_model, tmp_path, monkeypatch):
    """No network needed when the file is cached: the COCO enum reads TORCH_HOME/hub/checkpoints
    and applies what torchvision's builder does for those weights (frozen BN eps 0)."""
    from torchvision.models.detection import RetinaNet_ResNet50_FPN_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = RetinaNet_ResNet50_FPN_Weights.COCO_V1
    cached = tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.save(small_tv_model.state_dict(), cached)
    converted = from_torchvision(weights)
    assert converted.config.args["depth"] == 18 and converted.category_ids == COCO_IDS
    ours = converted.model.backbone.bn1.running_var
    assert torch.allclose(ours, small_tv_model.backbone.body.bn1.running_var - 1e-5, rtol=0, atol=1e-9)
