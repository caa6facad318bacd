"""Fine-tuning from pretrained weights: rows carried by class name, mismatches refused whole,
and a torchvision state dict fine-tuned through `anchordet train --weights`."""
import json

import pytest
import torch
from PIL import Image

from anchordet.cli.main import main
from anchordet.config.schema import ModelConfig
from anchordet.weights_file import save_weights
from anchordet.engine.init_weights import initialise_from
from anchordet.errors import UserError
from helpers import TINY_RETINANET, TINY_SSD

TINY_FRCNN = dict(depth=18, num_classes=3, backbone_width=8, frozen_bn=False, trainable_layers=5,
                  anchor_sizes=[16, 32], roi_output_size=4)


def saved(tmp_path, factory, args, names, seed=0):
    config = ModelConfig(factory, args)
    torch.manual_seed(seed)
    model = config.build()
    save_weights(tmp_path / "src.safetensors", model, config,
                 {"anchordet_inference": json.dumps({"class_names": names})})
    return model, tmp_path / "src.safetensors"


def fresh(factory, args, seed=1):
    torch.manual_seed(seed)
    return ModelConfig(factory, args).build()


def test_retinanet_rows_are_carried_by_class_name_anchor_major(tmp_path):
    source, path = saved(tmp_path, "retinanet_resnet_fpn", {**TINY_RETINANET, "num_classes": 3}, ["cat", "dog", "cow"])
    target = fresh("retinanet_resnet_fpn", {**TINY_RETINANET, "num_classes": 2})
    init = {k: v.clone() for k, v in target.state_dict().items()}
    summary = initialise_from(target, path, ["cow", "zebra"])
    assert summary.carried == ["cow"] and summary.new_classes == ["zebra"]
    assert summary.reinitialised == ["head.cls_output.weight", "head.cls_output.bias"]
    anchors = target.head.num_anchors
    src, out = source.state_dict(), target.state_dict()
    for key in ("head.cls_output.weight", "head.cls_output.bias"):
        for a in range(anchors):
            torch.testing.assert_close(out[key][a * 2 + 0], src[key][a * 3 + 2], rtol=0, atol=0)  # cow
            torch.testing.assert_close(out[key][a * 2 + 1], init[key][a * 2 + 1], rtol=0, atol=0)  # zebra: fresh
    for key in out:
        if not key.startswith("head.cls_output"):
            torch.testing.assert_close(out[key], src[key].to(out[key].dtype), rtol=0, atol=0)
    assert "1 of 2" in summary.line() and "cow" in summary.line()


def test_ssd_keeps_the_background_row_and_faster_rcnn_its_box_deltas(tmp_path):
    source, path = saved(tmp_path, "ssd_vgg16", {**TINY_SSD, "num_classes": 2}, ["a", "b"])
    target = fresh("ssd_vgg16", {**TINY_SSD, "num_classes": 3})
    init = {k: v.clone() for k, v in target.state_dict().items()}
    initialise_from(target, path, ["x", "b", "y"])
    src, out = source.state_dict(), target.state_dict()
    weight = "head.classification.0.weight"
    per_location = out[weight].shape[0] // 4
    for a in range(per_location):
        torch.testing.assert_close(out[weight][a * 4 + 1], src[weight][a * 3 + 1], rtol=0, atol=0)  # b
        torch.testing.assert_close(out[weight][a * 4 + 3], src[weight][a * 3 + 2], rtol=0, atol=0)  # background
        torch.testing.assert_close(out[weight][a * 4 + 0], init[weight][a * 4 + 0], rtol=0, atol=0)  # x: fresh

    (tmp_path / "frcnn").mkdir()
    source, path = saved(tmp_path / "frcnn", "faster_rcnn_resnet_c4", TINY_FRCNN, ["p", "q", "r"])
    target = fresh("faster_rcnn_resnet_c4", {**TINY_FRCNN, "num_classes": 2})
    initialise_from(target, path, ["r", "p"])
    src, out = source.state_dict(), target.state_dict()
    key = "roi_head.predictor.bbox_pred.weight"
    torch.testing.assert_close(out[key][0:4], src[key][8:12], rtol=0, atol=0)  # r: class 2 -> 0
    torch.testing.assert_close(out[key][4:8], src[key][0:4], rtol=0, atol=0)  # p: class 0 -> 1
    torch.testing.assert_close(out[key][8:12], src[key][12:16], rtol=0, atol=0)  # background 3 -> 2
    key = "roi_head.predictor.cls_score.bias"
    torch.testing.assert_close(out[key], src[key][[2, 0, 3]], rtol=0, atol=0)


@pytest.mark.parametrize("change, message, fix", [
    ({"depth": 34}, "missing from the weights", "model.depth=18"),
    ({"backbone_width": 16}, "shape mismatch", "model.backbone_width=8"),
    ({"anchor_aspect_ratios": [0.5, 1.0, 2.0, 3.0]}, "box_output.*other anchors per location",
     "model.anchor_aspect_ratios=[0.5, 1.0, 2.0]"),
    ({"anchor_base_sizes": [20, 40, 80, 160, 320]}, "other anchors", "model.anchor_base_sizes=[32, 64, 128, 256, 512]")])
def test_another_architecture_is_one_error_and_nothing_is_loaded(tmp_path, change, message, fix):
    _, path = saved(tmp_path, "retinanet_resnet_fpn", TINY_RETINANET, [str(i) for i in range(10)])
    target = fresh("retinanet_resnet_fpn", {**TINY_RETINANET, **change})
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(UserError, match=message) as info:
        initialise_from(target, path, [str(i) for i in range(10)],
                        ModelConfig("retinanet_resnet_fpn", {**TINY_RETINANET, **change}))
    assert "\n" not in str(info.value) and "nothing was loaded" in str(info.value)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    # the weights' own config (or the factory's defaults it left out) says which option would
    # fit: exactly the one that was changed, back to the weights' value
    assert str(info.value).endswith(f"| it fits with --set {fix}")


def test_no_set_is_named_when_no_option_of_this_factory_fits(tmp_path):
    _, path = saved(tmp_path, "faster_rcnn_resnet_c4", TINY_FRCNN, ["a", "b", "c"])
    config = ModelConfig("retinanet_resnet_fpn", TINY_RETINANET)
    with pytest.raises(UserError, match="nothing was loaded") as info:
        initialise_from(config.build(), path, ["a", "b", "c"], config)
    assert "--set" not in str(info.value)


def write_coco(root, names, count=2, side=64):
    """A tiny COCO dataset: ``count`` images with one box of each class."""
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        Image.new("RGB", (side, side), (40 * i, 90, 160)).save(root / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": side, "height": side})
        for c in range(len(names)):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": c + 1,
                                "bbox": [4 + 20 * c, 8, 16, 24], "area": 384, "iscrowd": 0})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": c + 1, "name": n} for c, n in enumerate(names)]}
    (root / "train.json").write_text(json.dumps(gt))
    (root / "data.yaml").write_text(
        "format: coco\nroot: .\ntrain: {images: images, annotations: train.json}\n"
        "val: {images: images, annotations: train.json}\n")
    return root / "data.yaml"


def test_a_torchvision_state_dict_fine_tunes_through_train_weights(tmp_path, capsys):
    """Random torchvision RetinaNet (91 COCO logits) -> a 2-class dataset where "person" is a COCO
    class: every tensor loads, person keeps torchvision's rows (label 1), the frozen stem stays
    torchvision's after training. The config is the preset's model (P6 from C5, the paper's
    anchors): the run takes P6 from P5 and torchvision's anchors from the file and says so
    (issue 26: it was refused, "fpn.p6.weight (256, 256, 3, 3) in the weights vs (256, 2048, 3, 3)")."""
    import yaml
    from torchvision.models.detection import retinanet_resnet50_fpn

    from anchordet.weights_file import load_detector
    from anchordet.interop.torchvision import TORCHVISION_RETINANET_ANCHOR_SIZES

    torch.manual_seed(0)
    tv = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    data = write_coco(tmp_path / "coco", ["person", "unicorn"])
    config = {
        "model": {"factory": "retinanet_resnet_fpn", "depth": 50, "num_classes": 2, "trainable_layers": 3,
                  "box_loss": "l1"},  # as retinanet_r50_coco: p6_from c5, the paper's anchors
        "data": {"dataset": str(data), "min_size": 64, "max_size": 64, "num_workers": 0, "hflip": False},
        "solver": {"epochs": 1, "batch_size": 2, "base_lr": 1e-6, "warmup_iters": 1},
        "run": {"out_dir": str(tmp_path / "run"), "device": "cpu", "threads": 1, "log_every": 1},
    }
    (tmp_path / "ft.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--no-progress", "-c", str(tmp_path / "ft.yaml"), "--weights", str(tmp_path / "tv.pth")]) == 0
    out = capsys.readouterr().out
    [line] = [l for l in out.splitlines() if l.startswith("init weights from")]
    assert "2 class-specific re-initialised" in line and "classes carried over: person (1 of 2)" in line
    assert line.endswith("; fitted to the weights: model.p6_from=p5, model.anchor_sizes=[[32.0, 40.0, 50.0], "
                         "[64.0, 80.0, 101.0], [128.0, 161.0, 203.0], [256.0, 322.0, 406.0], [512.0, 645.0, 812.0]], "
                         "model.anchor_offset=0.0, model.anchor_round_base=true")
    saved_config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved_config["model"]["init_weights"] == str(tmp_path / "tv.pth")
    assert saved_config["model"]["p6_from"] == "p5" and saved_config["model"]["anchor_offset"] == 0.0
    assert saved_config["model"]["anchor_sizes"] == [list(s) for s in TORCHVISION_RETINANET_ANCHOR_SIZES]
    model, _ = load_detector(tmp_path / "run" / "model.safetensors")
    tv_state = tv.state_dict()
    torch.testing.assert_close(model.backbone.conv1.weight, tv_state["backbone.body.conv1.weight"], rtol=0, atol=0)
    anchors = model.head.num_anchors
    ours = model.head.cls_output.weight.detach()
    theirs = tv_state["head.classification_head.cls_logits.weight"]
    for a in range(anchors):
        torch.testing.assert_close(ours[a * 2], theirs[a * 91 + 1], rtol=0, atol=1e-4)  # person, lr 1e-6


def test_digits_classes_subset_and_fine_tuning_between_subsets(tmp_path, capsys):
    tiny = ["model.backbone_width=8", "model.fpn_channels=16", "model.head_channels=16",
            "data.digits.num_train=8", "data.digits.num_val=2", "solver.batch_size=4", "solver.epochs=1",
            "run.threads=1", "solver.warmup_iters=1", "data.min_size=64", "data.max_size=64"]

    def train(out, classes, *extra):
        args = ["train", "--no-progress", "-c", "retinanet_digits_fast", "--set", f"run.out_dir={out}",
                "--set", f"model.num_classes={len(classes)}", "--set", f"data.digits.classes={classes}", *extra]
        for item in tiny:
            args += ["--set", item]
        return main(args)

    assert train(tmp_path / "a", [0, 1, 2, 3, 4]) == 0
    assert train(tmp_path / "b", [5, 6, 7, 8, 9], "--weights", str(tmp_path / "a" / "model.safetensors"),
                 "--set", "data.digits.fixed_train=true") == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("init weights")][0]
    assert "classes carried over: none (0 of 5)" in line
    assert main(["evaluate", "--weights", str(tmp_path / "b" / "model.safetensors"), "--device", "cpu",
                 "--out", str(tmp_path / "eval")]) == 0  # rebuilds the 5-9 test scenes from the weights
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert {r["category_id"] for r in results} <= {5, 6, 7, 8, 9}
    assert train(tmp_path / "c", [5, 6, 7], "--weights", str(tmp_path / "a" / "model.safetensors"),
                 "--resume", str(tmp_path / "a" / "last.pt")) == 2


def test_a_torchvision_weights_name_is_read_from_the_hub_cache(tmp_path, monkeypatch):
    """``RetinaNet_ResNet50_FPN_Weights.COCO_V1`` -> the file of that name in the torch hub cache
    (here a random state dict put there by the test; nothing is downloaded): both COCO classes of
    the new dataset keep their rows."""
    from pathlib import PurePosixPath
    from urllib.parse import urlparse

    from torchvision.models.detection import RetinaNet_ResNet50_FPN_Weights, retinanet_resnet50_fpn

    from anchordet.interop.torchvision import TORCHVISION_RETINANET_ANCHOR_SIZES

    torch.manual_seed(0)
    tv = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    name = PurePosixPath(urlparse(RetinaNet_ResNet50_FPN_Weights.COCO_V1.url).path).name
    torch.save(tv.state_dict(), cache / name)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    target = fresh("retinanet_resnet_fpn", dict(
        depth=50, num_classes=2, p6_from="p5", anchor_sizes=[list(s) for s in TORCHVISION_RETINANET_ANCHOR_SIZES],
        anchor_offset=0.0, anchor_round_base=True))
    summary = initialise_from(target, "RetinaNet_ResNet50_FPN_Weights.COCO_V1", ["dog", "person"])
    assert summary.carried == ["dog", "person"] and summary.new_classes == []
    theirs = tv.state_dict()["head.classification_head.cls_logits.weight"]
    ours = target.head.cls_output.weight.detach()
    for a in range(target.head.num_anchors):  # COCO labels: person 1, dog 18
        torch.testing.assert_close(ours[a * 2 + 0], theirs[a * 91 + 18], rtol=0, atol=0)
        torch.testing.assert_close(ours[a * 2 + 1], theirs[a * 91 + 1], rtol=0, atol=0)
    with pytest.raises(UserError, match="not a torchvision weights name"):
        initialise_from(target, "Nonsense_Weights.COCO_V1", ["dog", "person"])
