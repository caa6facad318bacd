"""Every preset `anchordet presets` lists, end to end at its own input sizes: two training
iterations, then `evaluate`, `predict`, `export --format onnx --check` (the raw outputs at
the preset's own eval size, compared with eager PyTorch by onnxruntime) and `benchmark` (one
repeat) on its weights.

The data is tiny (two 64 px images with the preset's number of classes, upscaled by the preset's
own resize: 640..800 px for the COCO presets, 300 / 512 for SSD) and the backbones random. The
networks are narrowed (``NARROW``: channel widths only) to keep the suite fast; input sizes,
strides, padding, anchors, class layouts, proposal counts and post-processing are the preset's.
Issue 26 found, with this matrix run as a user would: SSD300 refused its own 300 px batches
(padded to 320), and the R50-C4 COCO export failed `--check` by its absolute tolerance
(tests/export/test_check_tolerance.py).
"""
import json

import pytest
from PIL import Image

import anchordet
from anchordet.cli.main import main
from anchordet.config.presets import PRESETS
from anchordet.structures.image_batch import padded_size

# Channel widths per factory (the digits presets are small already and keep their own).
NARROW = {
    "retinanet_resnet_fpn": ["model.backbone_width=8", "model.fpn_channels=16", "model.head_channels=16"],
    "ssd_vgg16": ["model.width=8"],
    "faster_rcnn_vgg16": ["model.backbone_width=4", "model.fc_channels=32", "model.rpn_channels=16"],
    "faster_rcnn_resnet_c4": ["model.backbone_width=8", "model.rpn_channels=16"],
}
RUN = ["solver.epochs=1", "solver.batch_size=1", "solver.warmup_iters=1", "data.num_workers=0", "run.threads=1",
       "run.device=cpu", "run.log_every=1"]


def write_dataset(root, num_classes: int, count: int = 2, side: int = 64):
    """``count`` COCO images of ``side`` px with a few boxes of the first classes; K categories."""
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        Image.new("RGB", (side, side), (60 * i, 120, 200 - 50 * i)).save(root / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": side, "height": side})
        for c in range(min(3, num_classes)):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": c + 1,
                                "bbox": [4 + 18 * c, 6 + 8 * i, 14, 30], "area": 420, "iscrowd": 0})
    categories = [{"id": c + 1, "name": f"class_{c}"} for c in range(num_classes)]
    (root / "gt.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    (root / "data.yaml").write_text("format: coco\nroot: .\ntrain: {images: images, annotations: gt.json}\n"
                                    "val: {images: images, annotations: gt.json}\n")
    return root / "data.yaml"


def preset_overrides(name: str, tmp_path) -> list[str]:
    config = PRESETS[name]
    if config.data.dataset == "digits":
        data = ["data.digits.num_train=2", "data.digits.num_val=1"]
        if config.data.random_window:  # one window per scene; scenes of 2x2 windows (2048 px ones take seconds)
            data += ["data.windows_per_image=1", f"data.digits.canvas_size={2 * config.data.random_window}",
                     "data.digits.digits_per_image=[20,20]"]
    else:
        data = [f"data.dataset={write_dataset(tmp_path / 'data', config.model.num_classes)}",
                "model.backbone_weights=none", *NARROW[config.model.factory]]
    return data + RUN + [f"run.out_dir={tmp_path / 'run'}"]


def export_size(model, settings) -> tuple[int, int]:
    """The preset's own eval input: its fixed size, else its eval shorter side on a square image
    padded to the model's stride."""
    if model.fixed_size is not None:
        return model.fixed_size, model.fixed_size
    return padded_size((settings.min_size, settings.min_size), model.size_divisible)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_evaluates_predicts_exports_and_benchmarks_at_its_own_sizes(name, tmp_path, capsys):
    args = ["train", "--no-progress", "--procs", "1", "--config", name]
    for item in preset_overrides(name, tmp_path):
        args += ["--set", item]
    assert main(args) == 0, capsys.readouterr().err
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["type"] == "train"] == [1, 2]
    assert [r["type"] for r in records].count("eval") == 1
    weights = str(run / "model.safetensors")
    predictor = anchordet.load(weights, "cpu")
    config = PRESETS[name]
    if config.data.eval_transform == "fixed":  # the network sees the preset's own size, not a padded one
        assert predictor.model.fixed_size == config.data.fixed_size and predictor.model.size_divisible == 1

    data = [] if config.data.dataset == "digits" else ["--data", str(tmp_path / "data" / "data.yaml")]
    assert main(["evaluate", "--weights", weights, "--device", "cpu", "--batch-size", "1", "--metric",
                 config.run.metric, "--out", str(tmp_path / "eval"), *data]) == 0, capsys.readouterr().err
    assert (tmp_path / "eval" / "results.json").is_file()

    image = tmp_path / "scene.png"
    Image.new("RGB", (80, 64), (30, 140, 90)).save(image)
    assert main(["predict", "--weights", weights, str(image), "--out", str(tmp_path / "pred"), "--score-thresh",
                 "0.0", "--device", "cpu", "--no-draw"]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "pred" / "detections.json").read_text()) is not None

    height, width = export_size(predictor.model, predictor.settings)
    capsys.readouterr()
    assert main(["export", "--weights", weights, "--format", "onnx", "--check", "--size",
                 str(height), str(width), "--out", str(tmp_path / "model.onnx")]) == 0, capsys.readouterr().out
    assert "(ok)" in capsys.readouterr().out

    assert main(["benchmark", "--weights", weights, "--repeats", "1", "--warmup", "1", "--batch-size", "1",
                 "--threads", "1", "--json", str(tmp_path / "bench.json")]) == 0, capsys.readouterr().err
    side = predictor.model.fixed_size or predictor.settings.min_size  # the weights' own eval size
    assert json.loads((tmp_path / "bench.json").read_text())["size"] == [side, side]
