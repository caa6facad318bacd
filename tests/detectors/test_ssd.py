import pytest
import torch

from anchordet import Targets
from anchordet.data.shapes import make_scenes
from anchordet.detectors.ssd import SSD, ssd300_vgg16, ssd512_vgg16, ssd_vgg16
from anchordet.structures.outputs import DenseOutputs
from helpers import assert_overfits, preset_model

# 96 px inputs: source maps 12, 6, 3, 2 (pool3 rounds 24 -> 12; two extra layers), boxes for the
# 20..44 px rectangles of make_scenes.
TINY = dict(image_size=96, width=8, extra_layers=((256, 512, 3, 2, 1), (128, 256, 3, 2, 1)),
            steps=(8, 16, 32, 48), min_sizes=(16, 28, 44, 60), max_sizes=(28, 44, 60, 80),
            aspect_ratios=((2,), (2,), (2,), (2,)))


def tiny(num_classes=3, **options):
    torch.manual_seed(0)
    return ssd_vgg16(num_classes, **{**TINY, **options})


@pytest.fixture(scope="module")
def full_size_outputs():
    """One forward of SSD300 and SSD512 (20 classes) on a batch of one."""
    outputs = {}
    for size, factory in ((300, ssd300_vgg16), (512, ssd512_vgg16)):
        model = factory(20).eval()
        with torch.no_grad():
            outputs[size] = model(torch.rand(1, 3, size, size))
    return outputs


def test_seed_002_shapes_ssd300(full_size_outputs):
    out = full_size_outputs[300]
    assert isinstance(out, DenseOutputs)
    # (38^2 * 4, 19^2 * 6, 10^2 * 6, 5^2 * 6, 3^2 * 4, 1^2 * 4): seed 002's mbox [4, 6, 6, 6, 4, 4]
    assert out.num_anchors_per_level == [5776, 2166, 600, 150, 36, 4]
    assert out.anchors.shape == ((38 ** 2 + 3 ** 2 + 1 ** 2) * 4 + (19 ** 2 + 10 ** 2 + 5 ** 2) * 6, 4) == (8732, 4)
    assert out.cls_logits.shape == (1, 8732, 21)  # 20 classes + background
    assert out.box_deltas.shape == (1, 8732, 4)


def test_shapes_ssd512(full_size_outputs):
    out = full_size_outputs[512]
    # 64, 32, 16, 8, 4, 2, 1 cells with [4, 6, 6, 6, 6, 4, 4] boxes
    assert out.num_anchors_per_level == [64 ** 2 * 4, 32 ** 2 * 6, 16 ** 2 * 6, 8 ** 2 * 6, 4 ** 2 * 6, 2 ** 2 * 4, 4]
    assert out.anchors.shape == (24564, 4)
    assert out.cls_logits.shape == (1, 24564, 21) and out.box_deltas.shape == (1, 24564, 4)


def test_paper_defaults():
    model = ssd300_vgg16(20, width=4)
    # the paper's Detect keeps 200 per image; every family keeps 300 by default (issue 25: no silent caps)
    assert (model.postprocess.score_thresh, model.postprocess.nms_thresh, model.postprocess.max_detections) == (0.01, 0.45, 300)
    assert model.box_coder.weights == (10.0, 10.0, 5.0, 5.0)
    matcher = model.target_builder.matcher
    assert (matcher.high_threshold, matcher.low_threshold, matcher.low_quality) == (0.5, 0.5, "force")
    assert model.neg_pos_ratio == 3.0 and model.default_boxes.num_boxes_per_location == [4, 6, 6, 6, 4, 4]


def test_digits_preset_layout():
    model = preset_model("ssd_digits")
    assert model.image_size == 128 and model.backbone.feature_sizes(128) == [16, 8, 4, 2]
    assert isinstance(model.backbone.features[1], torch.nn.BatchNorm2d)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 128, 128))
    assert out.anchors.shape == ((16 ** 2 + 8 ** 2 + 4 ** 2 + 2 ** 2) * 6, 4)
    assert out.cls_logits.shape == (1, 2040, 11)


def test_forward_same_type_in_train_and_eval():
    model = tiny()
    x = torch.rand(1, 3, 96, 96)
    assert type(model.train()(x)) is type(model.eval()(x)) is DenseOutputs


def test_no_gt_box_loss_zero_class_loss_positive():
    losses = tiny().loss([torch.rand(3, 96, 96)], [Targets()])
    assert losses["loss_box"].item() == 0.0
    assert losses["loss_cls"].item() > 0


def test_one_gt_validation_loss_and_gradients():
    model = tiny().eval()
    targets = [Targets(torch.tensor([[10.0, 20, 40, 60]]), torch.tensor([2])), Targets()]
    losses = model.loss(torch.rand(2, 3, 96, 96), targets)
    assert set(losses) == {"loss_cls", "loss_box"} and all(v.ndim == 0 for v in losses.values())
    assert losses["loss_box"] > 0 and torch.isfinite(losses["loss_cls"])
    sum(losses.values()).backward()
    assert model.backbone.features[0].weight.grad.abs().sum() > 0
    assert model.backbone.l2norm.weight.grad.abs().sum() > 0


def test_predict_contract():
    model = tiny(score_thresh=0.0, max_detections=50).eval()
    detections = model.predict([torch.rand(3, 96, 96), torch.rand(3, 96, 96)])
    assert len(detections) == 2
    for det in detections:
        assert 0 < len(det) <= 50
        assert det.labels.dtype == torch.int64 and ((det.labels >= 0) & (det.labels < 3)).all()
        assert (det.boxes >= 0).all() and (det.boxes <= 96).all()
        assert (det.scores[:-1] >= det.scores[1:]).all()


def test_overfits_a_handful_of_images():
    model = tiny()
    images, targets = make_scenes(4, 96)
    assert_overfits(model, images, targets, max_steps=300, check_every=20)


@pytest.mark.parametrize("call", ["loss", "predict", "forward"])
def test_rejects_other_input_sizes(call):
    model = tiny()
    message = r"size 64x80 \(height x width\), but this SSD takes 96x96 inputs; the data pipeline must resize images and boxes to \(96, 96\)"
    with pytest.raises(ValueError, match=message):
        if call == "loss":
            model.loss([torch.rand(3, 96, 96), torch.rand(3, 64, 80)], [Targets(), Targets()])
        elif call == "predict":
            model.predict(torch.rand(2, 3, 64, 80))
        else:
            model(torch.rand(1, 3, 64, 80))


def test_rejects_an_image_of_a_list_by_index():
    with pytest.raises(ValueError, match="image 1: size 64x80"):
        tiny().predict([torch.rand(3, 96, 96), torch.rand(3, 64, 80)])


def test_bad_targets_and_images():
    with pytest.raises(ValueError, match="image 0, box 0: label 3 outside 0..2"):
        tiny().loss(torch.rand(1, 3, 96, 96), [Targets(torch.tensor([[1.0, 1, 5, 5]]), torch.tensor([3]))])
    with pytest.raises(ValueError, match="expected a float tensor"):
        tiny().predict(torch.zeros(1, 3, 96, 96, dtype=torch.uint8))


def test_factory_errors():
    with pytest.raises(ValueError, match="image_size 128: only 300 and 512 have default layouts; give extra_layers, steps"):
        ssd_vgg16(3, image_size=128, width=4)
    with pytest.raises(ValueError, match=r"gives source maps of sides \[12, 6, 3, 2\], but the default boxes have 3 levels"):
        tiny(steps=(8, 16, 32), min_sizes=(16, 28, 44), max_sizes=(28, 44, 60), aspect_ratios=((2,), (2,), (2,)))
    assert isinstance(ssd300_vgg16(3, width=4, min_negatives=0), SSD)
