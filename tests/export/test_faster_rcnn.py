"""Faster R-CNN export, checked against its peers onnxruntime and torch.jit.load.

Before the fix every path crashed (``'FasterRCNNOutputs' object has no attribute
'cls_logits'``). Both designs at tiny width: VGG16 + RoIPool 7x7 (seed 003) and ResNet-18-C4 +
RoIAlign (seed 004's design; aligned and the original unaligned version, which ONNX maps onto two
RoiAlign modes). One dynamic export runs at other batch sizes and image sizes than traced.

Tolerances: boxes within 1e-4 px and scores within 1e-5 of ``predict`` (``assert_detections_equal``).
The runtimes' float32 convolutions and poolings sum in other orders, so the features differ by
~1e-7 relative; through the two decodes (exp of deltas) boxes of <= 128 px move by ~1e-5 px.
1e-4 px is ten times that and a thousand times below a pixel. Every selection step bites on
these inputs (the heads are spread so that no two scores are near-tied): the pre-NMS top-k (150
of 216 / 432 anchors), the min-size filter, the post-NMS top-n, the score threshold and the
per-image cap.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from anchordet.detectors.faster_rcnn import faster_rcnn_resnet18_c4, faster_rcnn_vgg16
from anchordet.export.onnx import export_onnx, raw_output_names
from anchordet.export.torchscript import export_torchscript
from anchordet.postprocess.roi import RoIPostprocess
from helpers import assert_detections_equal, spread_faster_rcnn_heads as spread

# torch.jit.load warns that TorchScript is deprecated (torch 2.14); loading it is the point here.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

COMMON = dict(anchor_sizes=(16, 32, 64), rpn_min_size=20.0, rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=40,
              box_score_thresh=0.3, box_detections_per_img=20)
DESIGNS = {
    "vgg16_roipool": lambda: faster_rcnn_vgg16(3, backbone_width=4, fc_channels=32, **COMMON),
    "c4_roialign": lambda: faster_rcnn_resnet18_c4(3, backbone_width=8, roi_pool="align", roi_output_size=6, **COMMON),
    "c4_roialign_unaligned": lambda: faster_rcnn_resnet18_c4(3, backbone_width=8, roi_pool="align",
                                                             roi_output_size=6, roi_aligned=False, **COMMON),
}


@pytest.fixture(scope="module", params=list(DESIGNS))
def model(request):
    torch.manual_seed(0)
    return spread(DESIGNS[request.param]().eval())


def sizes_of(images: torch.Tensor) -> np.ndarray:
    return np.array([list(images.shape[-2:])] * len(images), dtype=np.int64)


def test_raw_outputs_equal_forward(model, tmp_path):
    path = export_onnx(model, tmp_path / "raw.onnx", dynamic=True, example_size=(64, 96), batch_size=2)
    session = ort.InferenceSession(str(path))
    names = ["features", "rpn_objectness", "rpn_box_deltas", "anchors"]
    assert [o.name for o in session.get_outputs()] == raw_output_names(model) == names
    for shape in [(1, 3, 64, 96), (2, 3, 96, 128)]:
        images = torch.rand(shape)
        with torch.no_grad():
            eager = model(images)
        for name, value, expected in zip(names, session.run(None, {"images": images.numpy()}), eager):
            assert value.shape == expected.shape, name
            assert np.abs(value - expected.numpy()).max() <= 1e-4, name


def test_detections_equal_predict(model, tmp_path):
    path = export_onnx(model, tmp_path / "det.onnx", postprocess=True, dynamic=True, example_size=(64, 96),
                       batch_size=2)
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["images", "image_sizes"]
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores", "labels", "batch_index"]
    for shape in [(1, 3, 64, 96), (3, 3, 96, 128)]:
        images = torch.rand(shape)
        expected = model.predict(images)
        got = [torch.from_numpy(v) for v in session.run(None, {"images": images.numpy(),
                                                                "image_sizes": sizes_of(images)})]
        assert_detections_equal(got, expected, min_count=10)
        assert got[1].min() > 0.3
    # two image sizes padded into one batch: each image's proposals and boxes clipped to its own size
    small, large = torch.rand(3, 50, 70), torch.rand(3, 90, 128)
    batch = torch.zeros(2, 3, 96, 128)
    batch[0, :, :50, :70], batch[1, :, :90] = small, large
    got = [torch.from_numpy(v) for v in session.run(None, {"images": batch.numpy(),
                                                            "image_sizes": np.array([[50, 70], [90, 128]])})]
    assert got[0][got[3] == 0][:, 2].max() <= 70 and got[0][got[3] == 0][:, 3].max() <= 50
    assert_detections_equal(got, model.predict([small, large]), min_count=5)


def test_every_selection_step_bites(model):
    """The inputs of the tests above exercise each cut (a cut that never bites is not tested)."""
    images = torch.rand(3, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    sizes = torch.tensor(sizes_of(images))
    with torch.no_grad():
        out = model(images)
        generator = model.rpn.proposal_generator
        assert out.anchors.shape[0] > model.rpn.test_proposals.pre_nms_top_n
        _, _, valid = generator._top_boxes(out.rpn_objectness, out.rpn_box_deltas, out.anchors, sizes,
                                           model.rpn.box_coder, model.rpn.test_proposals.pre_nms_top_n)
        assert 0 < int(valid.sum()) < valid.numel()  # some boxes under rpn_min_size
        proposals = model.rpn.flat_proposals(model.rpn_outputs(out), sizes, model.rpn.test_proposals)
        assert int((proposals.batch_index == 0).sum()) == model.rpn.test_proposals.post_nms_top_n
    unlimited = model.predict(images, postprocess=RoIPostprocess(0.3, 0.5, 1000))
    everything = model.predict(images, postprocess=RoIPostprocess(0.0, 0.5, 1000))
    assert max(len(d) for d in unlimited) > 20 and sum(map(len, everything)) > sum(map(len, unlimited))
    assert max(len(d) for d in model.predict(images)) == 20


def test_torchscript_raw_and_detections(model, tmp_path):
    raw = torch.jit.load(str(export_torchscript(model, tmp_path / "raw.pt", example_size=(64, 96))))
    det = torch.jit.load(str(export_torchscript(model, tmp_path / "det.pt", example_size=(64, 96), batch_size=2,
                                                postprocess=True)))
    images = torch.rand(3, 3, 96, 128)  # another batch size and image size than traced
    with torch.no_grad():
        eager = model(images)
        for value, expected in zip(raw(images), eager):
            assert value.shape == expected.shape and (value - expected).abs().max() <= 1e-4
        got = list(det(images, torch.tensor(sizes_of(images))))
    assert_detections_equal(got, model.predict(images), min_count=10)


def test_nothing_above_the_threshold(tmp_path):
    torch.manual_seed(0)
    model = spread(DESIGNS["c4_roialign"]().eval())
    model.postprocess = RoIPostprocess(score_thresh=1.0)  # softmax scores never exceed 1
    path = export_onnx(model, tmp_path / "empty.onnx", postprocess=True, dynamic=True, example_size=(64, 64))
    images = torch.rand(2, 3, 64, 96)
    boxes, scores, labels, batch_index = ort.InferenceSession(str(path)).run(
        None, {"images": images.numpy(), "image_sizes": sizes_of(images)})
    assert boxes.shape == (0, 4) and scores.shape == labels.shape == batch_index.shape == (0,)


def test_aligned_roialign_needs_opset_16(tmp_path):
    """Below opset 16 ONNX RoiAlign has no half-pixel mode: refused, nothing written."""
    from anchordet.errors import UserError

    model = DESIGNS["c4_roialign"]().eval()
    with pytest.raises(UserError, match="opset 15: .*needs ONNX opset 16"):
        export_onnx(model, tmp_path / "old.onnx", postprocess=True, opset=15)
    assert not (tmp_path / "old.onnx").exists()
