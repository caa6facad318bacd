"""`anchordet predict` and `anchordet evaluate` end to end on weights files made by the tests."""
import json

import pytest
import torch

from anchordet.cli.main import main
from anchordet.config.inference import InferenceSettings
from anchordet.config.schema import DigitsOptions, ModelConfig
from anchordet.data.digits import DigitsDataset
from anchordet.data.image_io import load_image
from anchordet.weights_file import save_weights
from anchordet.postprocess.rescale import rescale_detections
from anchordet.structures.targets import Detections
from anchordet.visualize import to_pil

TINY_MODEL = dict(depth=18, num_classes=10, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=1,
                  frozen_bn=False, score_thresh=0.0, max_detections=20)


def write_weights(path, min_size=96, max_size=96, category_ids=None):
    config = ModelConfig("retinanet_resnet_fpn", TINY_MODEL)
    torch.manual_seed(0)
    model = config.build().eval()
    settings = InferenceSettings("resize", min_size, max_size, class_names=[f"digit{i}" for i in range(10)],
                                 category_ids=category_ids or [100 + i for i in range(10)], dataset="digits",
                                 digits=DigitsOptions(num_val=3, canvas_size=64, digits_per_image=(1, 3), seed=0))
    save_weights(path, model, config, settings.to_metadata())
    return model


def test_predict_draws_pictures_and_writes_the_model_detections_in_original_pixels(tmp_path, capsys):
    model = write_weights(tmp_path / "w.safetensors", min_size=96, max_size=96)
    folder = tmp_path / "images"
    folder.mkdir()
    scenes = DigitsDataset("test", DigitsOptions(num_val=2, canvas_size=64))
    for i in range(2):
        to_pil(scenes[i].image).save(folder / f"scene{i}.png")
    assert main(["predict", "--weights", str(tmp_path / "w.safetensors"), str(folder), "--out", str(tmp_path / "out"),
                 "--score-thresh", "0.0", "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "scene0.png").is_file() and (tmp_path / "out" / "scene1.png").is_file()
    results = json.loads((tmp_path / "out" / "detections.json").read_text())
    images = json.loads((tmp_path / "out" / "images.json").read_text())
    assert [im["file_name"].rsplit("/", 1)[1] for im in images] == ["scene0.png", "scene1.png"]
    # The same detections computed by hand: resize 64 -> 96, predict, scale back by 64/96.
    image = load_image(folder / "scene0.png")
    resized = torch.nn.functional.interpolate(image[None], size=(96, 96), mode="bilinear", align_corners=False,
                                              antialias=False)[0]
    mine = [r for r in results if r["image_id"] == 0]
    expected = rescale_detections(model.predict([resized])[0], (96, 96), (64, 64))
    assert len(mine) == len(expected) > 0
    assert {r["category_id"] for r in mine} <= set(range(100, 110))
    got_boxes = torch.tensor([[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]]
                              for r in sorted(mine, key=lambda r: -r["score"])])
    order = expected.scores.argsort(descending=True, stable=True)
    torch.testing.assert_close(got_boxes, expected.boxes[order], atol=0.5, rtol=0)  # resize kernels may differ slightly


def test_predict_reports_missing_inputs(tmp_path, capsys):
    write_weights(tmp_path / "w.safetensors")
    assert main(["predict", "--weights", str(tmp_path / "w.safetensors"), str(tmp_path / "nope.jpg")]) == 2
    assert "no such image, folder or pattern" in capsys.readouterr().err


def test_evaluate_scores_perfect_detections_as_ap_one(tmp_path, monkeypatch, capsys):
    """An oracle model (the ground truth, in the resized frame the model sees) must score AP 1.0:
    this checks the resize, the mapping back to original pixels and the label -> category id map."""
    write_weights(tmp_path / "w.safetensors", min_size=96, max_size=96)
    scenes = DigitsDataset("test", DigitsOptions(num_val=3, canvas_size=64, digits_per_image=(1, 3)))
    queue = [scenes.read_annotations(i) for i in range(3)]

    def oracle(self, images, postprocess=None):
        out = []
        for _ in range(len(images) if isinstance(images, list) else images.shape[0] if torch.is_tensor(images) else len(images)):
            t = queue.pop(0)
            boxes = t.boxes * 96 / 64  # the model sees 96x96 images
            out.append(Detections(boxes, torch.linspace(0.9, 0.8, len(t)), t.labels))
        return out

    from anchordet.detectors.retinanet import RetinaNet

    monkeypatch.setattr(RetinaNet, "predict", oracle)
    assert main(["evaluate", "--weights", str(tmp_path / "w.safetensors"), "--data", "digits", "--digits-val-images", "3",
                 "--out", str(tmp_path / "eval"), "--device", "cpu", "--analyze"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["stats"]["AP"] == pytest.approx(1.0)
    # --analyze: perfect detections leave no error of any kind, and the best F1 is 1
    tide = json.loads((tmp_path / "eval" / "analysis" / "tide.json").read_text())
    assert tide["ap"] == pytest.approx(100.0) and not any(tide["counts"].values())
    assert "best F1 1.000" in capsys.readouterr().out
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert len(results) == sum(len(scenes.read_annotations(i)) for i in range(3))


def test_precision_option_reaches_the_model_and_fp16_on_cpu_falls_back(tmp_path, monkeypatch, capsys):
    """--precision: predict and evaluate set the network up in it; fp16 on a CPU says so in one
    line and gives exactly the fp32 detections."""
    import anchordet.runtime.acceleration as acceleration

    write_weights(tmp_path / "w.safetensors")
    folder = tmp_path / "images"
    folder.mkdir()
    to_pil(DigitsDataset("test", DigitsOptions(num_val=1, canvas_size=64))[0].image).save(folder / "scene.png")
    base = ["predict", "--weights", str(tmp_path / "w.safetensors"), str(folder), "--score-thresh", "0.0",
            "--device", "cpu"]
    assert main(base + ["--out", str(tmp_path / "fp32")]) == 0
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "fp16"), "--precision", "fp16"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "precision fp16" in err[0] and "running in fp32" in err[0]
    assert (tmp_path / "fp16" / "detections.json").read_text() == (tmp_path / "fp32" / "detections.json").read_text()
    seen = []
    original = acceleration.accelerate_for_inference
    monkeypatch.setattr(acceleration, "accelerate_for_inference",
                        lambda model, device, precision, *rest: seen.append(precision) or original(model, device, precision, *rest))
    assert main(["evaluate", "--weights", str(tmp_path / "w.safetensors"), "--data", "digits", "--precision", "bf16",
                 "--device", "cpu", "--out", str(tmp_path / "eval")]) == 0
    assert seen == ["bf16"] and (tmp_path / "eval" / "metrics.json").is_file()
