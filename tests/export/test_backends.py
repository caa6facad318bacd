"""One Predictor for every backend: ``anchordet export`` (ONNX, OpenVINO IR; raw outputs or NMS
inside) -> ``anchordet.load(file)`` -> ``predict`` gives what eager PyTorch gives, for all three
families; INT8 calibration runs; options, evaluation, video and benchmark take exported files; a
missing runtime is one line.

Tolerances: boxes within 1e-3 px and scores within 1e-4 of eager ``predict`` (PyTorch's, ONNX
Runtime's and OpenVINO's fp32 convolutions sum in different orders: raw outputs differ by ~1e-5,
see test_cli_and_example.py; boxes are decoded with exp() and scaled back to the original image).
Eager runs without BN folding and channels_last, as exported (``fold_bn=False``).
Tiny random models with spread heads (no near-tied scores), as in test_cli_and_example.py.
"""
from __future__ import annotations

import json
import sys

import pytest
import torch

import anchordet
from anchordet.cli.main import main
from anchordet.config.schema import ModelConfig
from anchordet.weights_file import save_weights
from anchordet.errors import UserError
from helpers import TINY_SSD, assert_detections_equal, spread_faster_rcnn_heads, tiny_export_retinanet

pytest.importorskip("openvino")
KEEP_RATIO = {"eval_transform": "resize", "min_size": 96, "max_size": 128}
NAMES = ["zero", "one", "two"]


def retinanet():
    return (*tiny_export_retinanet(), KEEP_RATIO)


def ssd():
    config = ModelConfig("ssd_vgg16", {**TINY_SSD, "num_classes": 3, "score_thresh": 0.01, "max_detections": 50})
    model = config.build().eval()
    with torch.no_grad():
        for conv in model.head.classification:
            conv.bias.normal_(0, 1)
    return config, model, {"eval_transform": "fixed", "fixed_size": 64}


def faster_rcnn():
    config = ModelConfig("faster_rcnn_resnet_c4", dict(
        depth=18, num_classes=3, backbone_width=8, roi_pool="align", roi_output_size=6, anchor_sizes=[16, 32, 64],
        rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=40, box_score_thresh=0.3, box_detections_per_img=20))
    return config, spread_faster_rcnn_heads(config.build().eval()), KEEP_RATIO


FAMILIES = {"retinanet": retinanet, "ssd": ssd, "faster_rcnn": faster_rcnn}
# (family, format, with NMS inside): Faster R-CNN's raw export holds its first stage only
CASES = [(family, fmt, post) for family in FAMILIES for fmt in ("onnx", "openvino") for post in (False, True)
         if family != "faster_rcnn" or post]
SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """family -> weights file of a tiny model."""
    folder = tmp_path_factory.mktemp("backends")
    files = {}
    for family, build in FAMILIES.items():
        torch.manual_seed(0)
        config, model, resize = build()
        files[family] = folder / f"{family}.safetensors"
        settings = {**resize, "class_names": NAMES, "category_ids": [11, 12, 13]}
        save_weights(files[family], model, config, {"anchordet_inference": json.dumps(settings)})
    return files


def export(weights_file, fmt: str, postprocess: bool, *extra: str, name: str | None = None):
    out = weights_file.parent / (name or f"{weights_file.stem}_{'det' if postprocess else 'raw'}{SUFFIX[fmt]}")
    if not out.exists():
        size = ["--size", "64", "64"] if "ssd" in weights_file.stem else ["--size", "64", "96"]
        args = ["export", "-w", str(weights_file), "--format", fmt, "--dynamic", *size, "--out", str(out), *extra]
        assert main(args + (["--postprocess"] if postprocess else [])) == 0
    return out


def images():
    """Two images of other sizes than the eval resize (so the Predictor resizes and maps back)."""
    return [torch.rand(3, 70, 100, generator=torch.Generator().manual_seed(1)),
            torch.rand(3, 150, 90, generator=torch.Generator().manual_seed(2))]


def eager(weights_file):
    return anchordet.load(weights_file, device="cpu", fold_bn=False, channels_last=False)


def assert_same(got, expected, min_count=3):
    """Two lists of ``Prediction``s or ``Detections``: per image the same detections."""
    for g, e in zip(got, expected, strict=True):
        g, e = getattr(g, "detections", g), getattr(e, "detections", e)
        flat = [g.boxes, g.scores, g.labels, torch.zeros(len(g), dtype=torch.int64)]
        assert_detections_equal(flat, [e], box_tol=1e-3, score_tol=1e-4, min_count=min_count)


@pytest.mark.parametrize("family,fmt,postprocess", CASES)
def test_exported_file_predicts_what_eager_predicts(weights, family, fmt, postprocess, capsys):
    path = export(weights[family], fmt, postprocess, "--check")
    assert "(ok)" in capsys.readouterr().out  # export's own --check
    predictor = anchordet.load(path)
    assert predictor.backend.name == ("onnxruntime" if fmt == "onnx" else "openvino")
    assert predictor.backend.adjustable != postprocess
    assert predictor.class_names == NAMES and predictor.category_ids == [11, 12, 13]
    assert_same(predictor.predict(images()), eager(weights[family]).predict(images()))


@pytest.mark.parametrize("family", ["retinanet", "ssd"])
def test_raw_outputs_take_any_thresholds_and_filters(weights, family):
    """Without NMS in the graph the library's post-processing runs: every option as eager."""
    predictor = anchordet.load(export(weights[family], "openvino", False))
    options = dict(score_thresh=0.2, nms_thresh=0.3, classes=["one", 2], max_detections=7, class_agnostic_nms=True)
    assert_same(predictor.predict(images(), **options), eager(weights[family]).predict(images(), **options),
                min_count=1)


def test_nms_in_the_graph_applies_stricter_settings_and_refuses_others(weights):
    """The graph keeps its best 30 per image (the model's cap) before the class filter applies:
    eager's detections at that score threshold, filtered, capped."""
    predictor = anchordet.load(export(weights["retinanet"], "onnx", True))
    graph_cut = eager(weights["retinanet"]).predict(images(), score_thresh=0.3)
    ones = [p.detections.select(torch.nonzero(p.detections.labels == 1)[:, 0]) for p in graph_cut]
    expected = [d.select(torch.arange(min(5, len(d)))) for d in ones]
    assert_same(predictor.predict(images(), score_thresh=0.3, classes=["one"], max_detections=5), expected,
                min_count=1)
    with pytest.raises(UserError, match="NMS is inside this exported graph"):
        predictor.predict(images(), nms_thresh=0.3)
    with pytest.raises(UserError, match="keeps scores above 0.05"):
        predictor.predict(images(), score_thresh=0.01)


def test_openvino_runs_an_onnx_file_too(weights):
    path = export(weights["ssd"], "onnx", True)
    predictor = anchordet.load(path, backend="openvino")
    assert predictor.backend.name == "openvino"
    assert_same(predictor.predict(images()), eager(weights["ssd"]).predict(images()))


def test_static_export_runs_other_batch_sizes(weights):
    """An ONNX file exported without --dynamic (batch 2, 128 x 128): three images resized to
    90 x 128 and 128 x 77 are padded to 128 x 128 and run in two calls, the second filled with a
    blank image; a larger input is refused with a line."""
    path = weights["retinanet"].parent / "static.onnx"
    assert main(["export", "-w", str(weights["retinanet"]), "--format", "onnx", "--size", "128", "128",
                 "--batch-size", "2", "--out", str(path)]) == 0
    predictor = anchordet.load(path)
    assert predictor.backend.image_shape == [2, 3, 128, 128]
    three = images() + [images()[0].flip(-1)]
    assert_same(predictor.predict(three), eager(weights["retinanet"]).predict(three))
    with pytest.raises(UserError, match="takes 128 x 128 inputs"):
        anchordet.load(path, min_size=160, max_size=160).predict(images())


def test_video_frames_through_an_exported_file(weights):
    predictor = anchordet.load(export(weights["retinanet"], "openvino", True))
    frames = images()[:1] * 3
    got = list(predictor.predict_video(frames, draw=False, progress=False, batch_size=2))
    assert [p.frame for p in got] == [0, 1, 2]
    assert_same(got, eager(weights["retinanet"]).predict(frames))


def test_evaluate_an_exported_file_gives_the_eager_metrics(tmp_path, capsys):
    """`anchordet evaluate -w model.onnx` on 4 digits scenes: a 10-class SSD (the digits' classes)
    gives the same number of results and the same COCO metrics as its weights file."""
    config = ModelConfig("ssd_vgg16", {**TINY_SSD, "score_thresh": 0.05, "max_detections": 50})
    torch.manual_seed(0)
    model = config.build().eval()
    with torch.no_grad():
        for conv in model.head.classification:
            conv.bias.normal_(0, 2)
    weights_file = tmp_path / "ssd10.safetensors"
    settings = {"eval_transform": "fixed", "fixed_size": 64}
    save_weights(weights_file, model, config, {"anchordet_inference": json.dumps(settings)})
    path = export(weights_file, "openvino", False)
    found = {}
    for name, model_file in (("eager", weights_file), ("openvino", path)):
        assert main(["evaluate", "-w", str(model_file), "--data", "digits", "--digits-val-images", "4",
                     "--device", "cpu", "--out", str(tmp_path / name)]) == 0
        found[name] = (json.loads((tmp_path / name / "results.json").read_text()),
                       json.loads((tmp_path / name / "metrics.json").read_text())["stats"])
    capsys.readouterr()
    (results, stats), (want_results, want_stats) = found["openvino"], found["eager"]
    assert len(results) == len(want_results) > 50
    assert stats.keys() == want_stats.keys()
    assert all(abs(stats[k] - want_stats[k]) < 1e-4 for k in stats)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_calibration_runs_and_stays_close_to_fp32(weights, fmt, capsys):
    """Post-training INT8 on 4 digits scenes: the file holds quantized convolutions and says int8;
    its raw outputs on a calibration-like image follow fp32's (correlation > 0.95: per-channel
    int8 weights and calibrated uint8 / int8 activations lose ~1% of the range per layer; wrong
    scales or a skipped calibration would not correlate)."""
    path = export(weights["retinanet"], fmt, False, "--int8", "--calib", "digits", "--calib-images", "4", "--check",
                  name=f"int8{SUFFIX[fmt]}")
    printed = capsys.readouterr().out
    assert "int8 vs eager fp32" in printed
    predictor = anchordet.load(path)
    assert predictor.backend.precision.startswith("int8")
    if fmt == "onnx":
        import onnx

        ops = [node.op_type for node in onnx.load(str(path)).graph.node]
        assert ops.count("DequantizeLinear") > 20 and "QuantizeLinear" in ops
    else:
        # the compiled graph runs its convolutions on int8 / uint8 inputs (VNNI / AMX kernels)
        ran = [op.get_rt_info() for op in predictor.backend.compiled.get_runtime_model().get_ordered_ops()]
        convs = [str(info["runtimePrecision"].astype(str)) for info in ran
                 if "layerType" in info and info["layerType"].astype(str) == "Convolution"]
        assert len(convs) > 20 and sum(p in ("u8", "i8") for p in convs) >= 0.9 * len(convs), convs
    from anchordet.config.schema import DigitsOptions
    from anchordet.data.digits import DigitsDataset

    scene = DigitsDataset("train", DigitsOptions(num_train=1)).__getitem__(0).image
    image = torch.nn.functional.interpolate(scene[None], size=(96, 96), mode="bilinear")
    got = dict(zip(predictor.backend.output_names, predictor.backend._infer({"images": image.numpy()})))
    with torch.no_grad():
        want = eager(weights["retinanet"]).model(image)
    for name in ("cls_logits", "box_deltas"):
        pair = torch.stack([torch.from_numpy(got[name]).flatten(), getattr(want, name).flatten()])
        assert torch.corrcoef(pair)[0, 1] > 0.95, name


@pytest.mark.parametrize("module,command", [
    ("openvino", ["predict", "-w", "{xml}", "{image}"]),
    ("onnxruntime", ["predict", "-w", "{onnx}", "{image}"]),
    ("openvino", ["export", "-w", "{weights}", "--format", "openvino", "--out", "{out}"]),
])
def test_a_missing_runtime_is_one_line(weights, tmp_path, monkeypatch, capsys, module, command):
    """The import is blocked (``sys.modules[name] = None`` makes ``import name`` fail)."""
    from PIL import Image

    values = {"xml": export(weights["retinanet"], "openvino", True), "onnx": export(weights["retinanet"], "onnx", True),
              "weights": weights["retinanet"], "out": tmp_path / "m.xml", "image": tmp_path / "a.png"}
    Image.new("RGB", (40, 30)).save(values["image"])
    monkeypatch.setitem(sys.modules, module, None)
    capsys.readouterr()
    assert main([part.format(**values) for part in command]) == 2
    err = capsys.readouterr().err.strip()
    extra = "openvino" if module == "openvino" else "onnx"
    assert len(err.splitlines()) == 1 and f"pip install 'anchordet[{extra}]'" in err, err
    assert not (tmp_path / "m.xml").exists() and not (tmp_path / "m.bin").exists()


def test_benchmark_prints_exported_files_beside_torch(weights, capsys):
    path = export(weights["retinanet"], "openvino", True)
    assert main(["benchmark", "-w", str(weights["retinanet"]), "--compare", str(path), "--batch-size", "1", "2",
                 "--repeats", "1", "--precision", "fp32", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| torch fp32") or line.startswith("| openvino")]
    assert len(rows) == 4 and all(line.rstrip().endswith("x |") for line in rows), out
    # an exported file alone: torch rows from its model config (random weights)
    assert main(["benchmark", "-w", str(path), "--batch-size", "1", "--repeats", "1", "--precision", "fp32"]) == 0
    assert "random weights" in capsys.readouterr().out


def test_metadata_describes_the_graph(weights):
    from anchordet.backends import open_exported

    raw, det = (open_exported(export(weights["faster_rcnn" if p else "ssd"], "openvino", p)) for p in (False, True))
    assert raw.info.outputs == "raw" and raw.info.model_config.factory == "ssd_vgg16"
    assert det.info.outputs == "detections" and det.postprocess.score_thresh == 0.3
    assert det.info.graph_postprocess["proposals"] == {"pre_nms_top_n": 150, "post_nms_top_n": 40}
    with pytest.raises(UserError, match="first stage only"):
        anchordet.load(export(weights["faster_rcnn"], "onnx", False))
