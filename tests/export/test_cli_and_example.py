"""`anchordet export` for all three families (RetinaNet, SSD, Faster R-CNN) from a weights file,
with its own ``--check`` against eager PyTorch, and examples/onnxruntime_inference.py on those
exported files: it prepares an image as ``anchordet predict`` does (the eval resize that export
copies from the weights into the ONNX metadata, the padding, boxes mapped back to the original
image), so it finds what ``anchordet.load(weights).predict`` finds on the same file.

Tiny random models with spread heads (no near-tied scores). Images of 70 x 100 and 150 x 90
pixels: the keep-ratio resize (shorter side 96, longer at most 128) enlarges the first to 90 x
128 and shrinks the second to 128 x 77, so neither reaches the network at its own size.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

import anchordet
from anchordet.cli.main import main
from anchordet.config.schema import ModelConfig
from anchordet.weights_file import save_weights
from helpers import TINY_SSD, assert_detections_equal, spread_faster_rcnn_heads, tiny_export_retinanet

# torch.jit.load warns that TorchScript is deprecated (torch 2.14); loading it is the point here.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

EXAMPLE = Path(__file__).parents[2] / "examples" / "onnxruntime_inference.py"
KEEP_RATIO = {"eval_transform": "resize", "min_size": 96, "max_size": 128}
NAMES = ["zero", "one", "two"]


def retinanet():
    return (*tiny_export_retinanet(), KEEP_RATIO)


def ssd():
    config = ModelConfig("ssd_vgg16", {**TINY_SSD, "num_classes": 3, "score_thresh": 0.01})
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


@pytest.fixture(scope="module", params=list(FAMILIES))
def exported(request, tmp_path_factory):
    """(weights file, ONNX file with post-processing) of one family, written by the CLI."""
    folder = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    config, model, resize = FAMILIES[request.param]()
    weights = folder / "model.safetensors"
    settings = {**resize, "class_names": NAMES, "category_ids": [1, 2, 3]}
    save_weights(weights, model, config, {"anchordet_inference": json.dumps(settings)})
    onnx_file = folder / "det.onnx"
    size = ["--size", "64", "64"] if request.param == "ssd" else ["--size", "64", "96"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", "--weights", str(weights), "--format", "onnx", "--postprocess", "--dynamic", *size,
                     "--batch-size", "2", "--out", str(onnx_file), "--check"]) == 0
    assert "(ok)" in printed.getvalue() and "detections" in printed.getvalue()
    return weights, onnx_file


def test_export_checks_pass_for_every_family(exported, capsys):
    weights, onnx_file = exported  # the fixture's --postprocess export passed its --check
    folder = onnx_file.parent
    size = ["--size", "64", "64"]
    for extra, out in ((["--format", "onnx", "--dynamic"], "raw.onnx"),
                       (["--format", "torchscript", "--postprocess"], "det.pt"),
                       (["--format", "torchscript"], "raw.pt")):
        assert main(["export", "--weights", str(weights), *extra, *size, "--out", str(folder / out), "--check"]) == 0
        printed = capsys.readouterr().out
        assert "(ok)" in printed and ("detections" in printed) == ("--postprocess" in extra), printed
    # the weights' inference settings travel in the ONNX metadata
    meta = ort.InferenceSession(str(onnx_file)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["anchordet_inference"])["class_names"] == NAMES
    assert int(meta["anchordet_size_divisible"]) == anchordet.load(weights).model.size_divisible


def load_example():
    spec = importlib.util.spec_from_file_location("onnxruntime_inference", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def noise_png(path: Path, height: int, width: int, seed: int) -> Path:
    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_example_finds_what_predict_finds(exported, tmp_path):
    """Pixels reach the network through PIL's float resize instead of torch's (they differ by
    <= 5e-6), so boxes are compared within 1e-3 px and scores within 1e-4."""
    weights, onnx_file = exported
    example = load_example()
    session = ort.InferenceSession(str(onnx_file))
    predictor = anchordet.load(weights)
    for i, (height, width) in enumerate([(70, 100), (150, 90)]):
        path = noise_png(tmp_path / f"{i}.png", height, width, seed=i)
        found = example.detect(session, Image.open(path), score_thresh=0.0)
        (expected,) = predictor.predict(str(path))
        flat = [torch.tensor([f[2] for f in found]).reshape(-1, 4), torch.tensor([f[1] for f in found]),
                torch.tensor([f[0] for f in found], dtype=torch.int64), torch.zeros(len(found), dtype=torch.int64)]
        assert_detections_equal(flat, [expected.detections], box_tol=1e-3, score_tol=1e-4, min_count=5)
        assert flat[0][:, 2].max() <= width and flat[0][:, 3].max() <= height  # the original image's pixels


def test_example_script_runs(exported, tmp_path):
    _, onnx_file = exported
    path = noise_png(tmp_path / "photo.png", 70, 100, seed=0)
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(onnx_file), str(path), "--score-thresh", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{path}: ") and int(lines[0].split()[1]) >= 5
    assert all(line.split()[0] in NAMES for line in lines[1:])  # class names from the file's metadata
