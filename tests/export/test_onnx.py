"""ONNX export checked against its peer, onnxruntime: the exported raw outputs equal eager
``forward`` and the exported post-processing equals ``predict``, at two input shapes from one
dynamic export. Tiny random models (outputs biased so that there are many detections)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from anchordet.config.schema import ModelConfig
from anchordet.export.onnx import DetectionsModule, export_onnx, raw_output_names
from helpers import assert_detections_equal, preset_model

TINY_RETINANET = {"depth": 18, "num_classes": 3, "backbone_width": 8, "fpn_channels": 16, "head_channels": 16,
                  "head_num_convs": 1}


def tiny_retinanet(seed: int = 0, cls_bias: float = -2.0):
    torch.manual_seed(seed)
    model = ModelConfig("retinanet_resnet_fpn", TINY_RETINANET).build().eval()
    with torch.no_grad():
        model.head.cls_output.weight.normal_(0, 0.3)
        model.head.cls_output.bias.normal_(cls_bias, 1)
        model.head.box_output.bias.normal_(0, 0.3)
    return model


def tiny_ssd(seed: int = 0):
    torch.manual_seed(seed)
    model = preset_model("ssd_digits", num_classes=3, width=8).eval()  # 128 x 128 inputs, 4 levels
    with torch.no_grad():
        for conv in model.head.classification:
            conv.bias.normal_(0, 1)
    return model


def full_sizes(images: torch.Tensor) -> torch.Tensor:
    """(B, 2) int64: every image fills the input (what predict's ImageBatch records for it)."""
    return torch.tensor([list(images.shape[-2:])] * len(images))


def run(session: ort.InferenceSession, images: torch.Tensor) -> list[torch.Tensor]:
    feed = {"images": images.numpy()}
    if len(session.get_inputs()) == 2:  # exported with post-processing
        feed["image_sizes"] = full_sizes(images).numpy()
    return [torch.from_numpy(np.asarray(out)) for out in session.run(None, feed)]


@pytest.fixture(scope="module")
def retinanet():
    return tiny_retinanet()


@pytest.fixture(scope="module")
def ssd():
    return tiny_ssd()


def test_retinanet_raw_outputs_dynamic(retinanet, tmp_path):
    path = export_onnx(retinanet, tmp_path / "raw.onnx", dynamic=True, example_size=(64, 96), batch_size=2)
    session = ort.InferenceSession(str(path))
    assert [o.name for o in session.get_outputs()] == raw_output_names(retinanet) == ["cls_logits", "box_deltas", "anchors"]
    assert session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    for shape in [(1, 3, 64, 96), (2, 3, 128, 64)]:  # another batch size, height and width than traced
        images = torch.rand(shape)
        with torch.no_grad():
            eager = retinanet(images)
        got = run(session, images)
        for name, value, expected in zip(raw_output_names(retinanet), got, eager):
            assert value.shape == expected.shape, name
            assert (value - expected).abs().max() <= 1e-4, name


def test_static_export_keeps_the_example_shape(retinanet, tmp_path):
    path = export_onnx(retinanet, tmp_path / "static.onnx", example_size=(64, 64))
    session = ort.InferenceSession(str(path))
    assert session.get_inputs()[0].shape == [1, 3, 64, 64]
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = retinanet(images).cls_logits
    assert (run(session, images)[0] - expected).abs().max() <= 1e-4


def test_retinanet_postprocess_equals_predict(retinanet, tmp_path):
    path = export_onnx(retinanet, tmp_path / "det.onnx", postprocess=True, dynamic=True, example_size=(64, 96),
                       batch_size=2)
    session = ort.InferenceSession(str(path))
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores", "labels", "batch_index"]
    assert [i.name for i in session.get_inputs()] == ["images", "image_sizes"]
    for shape in [(1, 3, 64, 96), (3, 3, 96, 128)]:
        images = torch.rand(shape)
        expected = retinanet.predict(images)
        assert_detections_equal(run(session, images), expected)
        # the module that was traced, run eagerly, is predict too
        with torch.no_grad():
            traced_module = DetectionsModule(retinanet)(images, full_sizes(images))
            assert_detections_equal(list(traced_module), expected, box_tol=0, score_tol=0)
    # images of different sizes: padded together (as ImageBatch pads them), clipped to their own size
    small, large = torch.rand(3, 50, 70), torch.rand(3, 90, 128)
    batch = torch.zeros(2, 3, 96, 128)
    batch[0, :, :50, :70], batch[1, :, :90, :128] = small, large
    sizes = np.array([[50, 70], [90, 128]], dtype=np.int64)
    got = [torch.from_numpy(v) for v in session.run(None, {"images": batch.numpy(), "image_sizes": sizes})]
    assert_detections_equal(got, retinanet.predict([small, large]))
    check_example_script(session, retinanet, tmp_path)


def check_example_script(session, model, tmp_path):
    """examples/onnxruntime_inference.py on a file exported without inference metadata (no eval
    resize to apply) and a PNG whose sides are not multiples of 32 (it pads) finds what
    ``predict`` finds on the same pixels. With metadata: tests/export/test_cli_and_example.py."""
    import importlib.util
    from pathlib import Path

    from PIL import Image

    spec = importlib.util.spec_from_file_location(
        "onnxruntime_inference", Path(__file__).parents[2] / "examples" / "onnxruntime_inference.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    pixels = (np.random.default_rng(0).random((70, 100, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "image.png")
    found = example.detect(session, Image.open(tmp_path / "image.png"), score_thresh=0.3)
    expected = model.predict([torch.from_numpy(pixels).permute(2, 0, 1).float() / 255])[0]
    keep = expected.scores >= 0.3
    flat = [torch.tensor([f[2] for f in found]), torch.tensor([f[1] for f in found]),
            torch.tensor([f[0] for f in found]), torch.zeros(len(found), dtype=torch.int64)]
    assert_detections_equal(flat, [type(expected)(expected.boxes[keep], expected.scores[keep], expected.labels[keep])],
                            min_count=5)


def test_postprocess_with_nothing_above_threshold(tmp_path):
    model = tiny_retinanet(cls_bias=-30.0)  # sigmoid(-30 +- a few) << 0.05
    path = export_onnx(model, tmp_path / "empty.onnx", postprocess=True, dynamic=True, example_size=(64, 64))
    boxes, scores, labels, batch_index = run(ort.InferenceSession(str(path)), torch.rand(2, 3, 64, 64))
    assert boxes.shape == (0, 4) and scores.shape == labels.shape == batch_index.shape == (0,)


def test_ssd_raw_and_postprocess(ssd, tmp_path):
    raw = ort.InferenceSession(str(export_onnx(ssd, tmp_path / "ssd.onnx", dynamic=True, batch_size=2)))
    assert raw.get_inputs()[0].shape == ["batch", 3, 128, 128]  # SSD: the size is part of the model
    det = ort.InferenceSession(str(export_onnx(ssd, tmp_path / "ssd_det.onnx", postprocess=True, dynamic=True,
                                               batch_size=2)))
    for batch in (1, 3):
        images = torch.rand(batch, 3, 128, 128)
        with torch.no_grad():
            eager = ssd(images)
        for value, expected in zip(run(raw, images), eager):
            assert value.shape == expected.shape and (value - expected).abs().max() <= 1e-4
        assert_detections_equal(run(det, images), ssd.predict(images))


def test_export_leaves_the_detector_in_eval_mode(tmp_path):
    """The exporter restores its wrapper's mode recursively; a wrapper left in training mode
    would switch the detector's BatchNorm layers to batch statistics after export."""
    model = preset_model("ssd_digits", num_classes=3, width=8, batch_norm=True).eval()
    export_onnx(model, tmp_path / "bn.onnx", batch_size=1)
    assert not any(m.training for m in model.modules())
