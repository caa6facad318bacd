"""The traced, frozen CPU inference path (``export.optimize.optimize_for_cpu_inference``) against eager."""
import pytest
import torch

from anchordet.export.optimize import optimize_for_cpu_inference


def _assert_same_predictions(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert len(g) == len(e) > 0 and torch.equal(g.labels, e.labels)
        torch.testing.assert_close(g.scores, e.scores, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(g.boxes, e.boxes, atol=1e-3, rtol=1e-4)


def _tiny_detectors():
    from anchordet.detectors.faster_rcnn import faster_rcnn_resnet18_c4
    from anchordet.detectors.retinanet import retinanet_resnet_fpn
    from anchordet.detectors.ssd import ssd_vgg16

    torch.manual_seed(0)
    retina = retinanet_resnet_fpn(18, 3, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=2)
    with torch.no_grad():  # well-spread scores around the 0.05 threshold (no near-ties), boxes off the anchors
        retina.head.cls_output.weight.normal_(0, 0.5)
        retina.head.cls_output.bias.fill_(-3.0)
        retina.head.box_output.weight.normal_(0, 0.01)
    ssd = ssd_vgg16(3, image_size=96, width=8, extra_layers=((256, 512, 3, 2, 1), (128, 256, 3, 2, 1)),
                    steps=(8, 16, 32, 48), min_sizes=(16, 28, 44, 60), max_sizes=(28, 44, 60, 80),
                    aspect_ratios=((2,), (2,), (2,), (2,)))
    frcnn = faster_rcnn_resnet18_c4(3, backbone_width=8, anchor_sizes=(16, 32, 64), roi_pool="align",
                                    roi_output_size=6, rpn_min_size=0.0, rpn_allowed_border=None)
    return [("retinanet", retina, [(96, 128), (64, 160)]), ("ssd", ssd, [(96, 96), (96, 96)]),
            ("frcnn", frcnn, [(96, 128), (80, 112)])]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_optimize_for_cpu_inference_same_outputs_any_size(index):
    """The traced, frozen parts give eager's raw outputs and detections, at the traced size and
    at another one; the original model is left eager."""
    name, model, sizes = _tiny_detectors()[index]
    model.eval()
    example = torch.rand(2, 3, *sizes[0])
    fast = optimize_for_cpu_inference(model, example)
    assert isinstance(fast.backbone, torch.jit.ScriptModule) and not isinstance(model.backbone, torch.jit.ScriptModule)
    for size in sizes:
        images = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(size[1]))
        with torch.no_grad():
            for g, e in zip(fast(images), model(images)):
                torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)
        _assert_same_predictions(fast.predict(images), model.predict(images))
