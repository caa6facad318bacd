"""A weights file's metadata is input: every field is checked before anything is built from it
(issue 19 item 8). The CLI turns each problem into one line naming the file and the field."""
import json
import time

import pytest
import torch
from safetensors.torch import save_file

from anchordet.cli.main import main
from anchordet.config.inference import InferenceSettings
from anchordet.config.metadata import MAX_NESTING, nesting_depth, parse_json_field
from anchordet.config.schema import model_values
from anchordet.config.schema import ModelConfig
from anchordet.weights_file import load_detector, read_inference_settings, save_weights
from anchordet.errors import UserError

TINY = dict(depth=18, num_classes=3, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=1,
            frozen_bn=False)
GOOD = {"eval_transform": "resize", "min_size": 64, "max_size": 96, "fixed_size": 300,
        "class_names": ["a", "b", "c"], "category_ids": [1, 5, 9]}


def test_nesting_depth_counts_levels_without_recursion():
    assert nesting_depth(3) == 0 and nesting_depth([1, [2]]) == 2 and nesting_depth({"a": [[1]]}) == 3
    deep = []
    for _ in range(100_000):  # recursion would overflow here
        deep = [deep]
    assert nesting_depth(deep) == 100_001


@pytest.mark.parametrize("text,message", [
    ("{not json", "is not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1), f"nested {MAX_NESTING + 1} levels deep"),
])
def test_parse_json_field_names_the_file_and_field(text, message):
    with pytest.raises(UserError, match=message) as err:
        parse_json_field(text, "w.safetensors", "anchordet_model")
    assert str(err.value).startswith("w.safetensors: metadata anchordet_model")


@pytest.mark.parametrize("value,message", [
    ([1, 2], "must be a JSON object, got list"),
    ({"depth": 18, "num_classes": 3}, "has no 'factory'"),
    ({"factory": "yolo", "num_classes": 3}, "unknown factory 'yolo'"),
    ({"factory": "retinanet_resnet_fpn", "num_classes": -3}, "model.num_classes must be an integer in 1..100000"),
    ({"factory": "retinanet_resnet_fpn", "num_classes": 10**9}, "got 1000000000"),
    ({"factory": "retinanet_resnet_fpn", "num_classes": 3, "depth": "big"}, "model.depth: expected an integer"),
    ({"factory": "retinanet_resnet_fpn", "num_classes": 3, "wings": 2}, "model.wings is not an option"),
])
def test_model_values_are_checked(value, message):
    with pytest.raises(UserError, match=message) as err:
        model_values(value, "w.safetensors")
    assert str(err.value).startswith("w.safetensors: ")


@pytest.mark.parametrize("change,message", [
    ({"class_names": ["a", "b"]}, "class_names: must have one entry per class of the model (3)"),  # IndexError before
    ({"class_names": ["a", "b", 3]}, "class_names[2]: expected a string"),
    ({"category_ids": [1, 1, 2]}, "category_ids: must be distinct"),
    ({"category_ids": [1, 2]}, "category_ids: must have one entry per class"),
    ({"min_size": -5}, "min_size: must be in 1..8192, got -5"),
    ({"max_size": 10**9}, "max_size: must be in 1..8192"),  # a resize to 1e9 pixels would allocate terabytes
    ({"min_size": 200}, "min_size: must be <= max_size (96)"),
    ({"eval_transform": "zoom"}, "anchordet_inference.eval_transform: 'zoom' is not one of resize, fixed"),
    ({"fixed_size": "300"}, "fixed_size: '300' is not a int | None"),
    ({"max_size": None}, "max_size: missing (eval_transform 'resize' needs it)"),
    ({"digits": {"num_val": -1}}, "digits: {'num_val': -1} is not a"),
    ({"colour": "red"}, "unknown key(s) ['colour']"),
])
def test_inference_settings_from_a_file_are_checked(change, message):
    with pytest.raises(UserError) as err:
        InferenceSettings.from_dict({**GOOD, **change}, "w.safetensors: anchordet_inference", 3)
    assert str(err.value).startswith("w.safetensors: anchordet_inference") and message in str(err.value), err.value
    assert InferenceSettings.from_dict(dict(GOOD), "w", 3).class_names == ("a", "b", "c")
    with pytest.raises(UserError, match="must be a mapping"):
        InferenceSettings.from_dict([], "w.safetensors", 3)


def _write(path, model_meta: str, inference: str | None = None, tensors=None):
    metadata = {"anchordet_model": model_meta}
    if inference is not None:
        metadata["anchordet_inference"] = inference
    save_file(tensors if tensors is not None else {"x": torch.zeros(1)}, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("model_meta,inference,expected", [
    ("{oops", None, "metadata anchordet_model is not valid JSON"),
    ("[1, 2, 3]", None, "must be a JSON object, got list"),
    (json.dumps({"num_classes": 3}), None, "has no 'factory'"),
    ("[" * 50_000 + "]" * 50_000, None, "nested too deeply"),
    (json.dumps({"factory": "retinanet_resnet_fpn", "num_classes": -2}), None, "model.num_classes"),
    (json.dumps({"factory": "retinanet_resnet_fpn", **TINY}), json.dumps({**GOOD, "class_names": ["a"]}),
     "anchordet_inference.class_names: must have one entry per class"),
    (json.dumps({"factory": "retinanet_resnet_fpn", **TINY}), "{bad", "metadata anchordet_inference is not valid"),
])
def test_predict_refuses_bad_metadata_in_one_line(tmp_path, capsys, model_meta, inference, expected):
    weights = _write(tmp_path / "w.safetensors", model_meta, inference)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    assert main(["predict", "-w", str(weights), str(image), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(weights) in err and expected in err, err


def test_a_config_that_would_allocate_too_much_is_refused_before_allocating(tmp_path):
    """num_classes 100000 with 4096-channel heads is 33 G parameters (133 GB): refused from
    the meta-device count, without allocating anything, in well under a second of building."""
    huge = {"factory": "retinanet_resnet_fpn", **TINY, "num_classes": 100_000, "head_channels": 4096}
    weights = _write(tmp_path / "w.safetensors", json.dumps(huge))
    start = time.process_time()
    with pytest.raises(UserError, match=r"w.safetensors: .* makes 33,\d{3},\d{3},\d{3} parameters"):
        load_detector(weights)
    assert time.process_time() - start < 30  # allocating and initialising 133 GB would take far longer or fail


def test_tensors_that_differ_from_the_metadata_are_named(tmp_path):
    config = ModelConfig("retinanet_resnet_fpn", TINY)
    model = config.build()
    wrong = ModelConfig("retinanet_resnet_fpn", {**TINY, "num_classes": 5})
    path = save_weights(tmp_path / "w.safetensors", model, wrong)  # metadata says 5 classes, tensors have 3
    with pytest.raises(UserError) as err:
        load_detector(path)
    message = str(err.value)
    assert message.startswith(f"{path}: the weights do not fit the model its metadata describes")
    assert "head.cls_output.weight: file (27, 16, 3, 3) vs model (45, 16, 3, 3)" in message
    assert "\n" not in message


def test_backbone_weights_in_the_metadata_are_not_loaded(tmp_path):
    """A model trained from ImageNet weights names them in its config; predicting must not need them."""
    config = ModelConfig("retinanet_resnet_fpn", TINY)
    model = config.build()
    named = ModelConfig("retinanet_resnet_fpn", {**TINY, "backbone_weights": str(tmp_path / "gone.pth")})
    path = save_weights(tmp_path / "w.safetensors", model, named)
    loaded, read = load_detector(path)
    assert read.model_config.args["backbone_weights"] == str(tmp_path / "gone.pth")
    assert torch.equal(loaded.head.cls_output.weight, model.head.cls_output.weight)


def test_a_truncated_weights_file_is_named(tmp_path):
    path = save_weights(tmp_path / "w.safetensors", ModelConfig("retinanet_resnet_fpn", TINY).build(),
                        ModelConfig("retinanet_resnet_fpn", TINY))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=f"{path}: not a readable safetensors file, truncated or damaged"):
        load_detector(path)
    path.write_bytes(data[:5])  # not even the header length
    with pytest.raises(UserError, match="truncated or damaged"):
        read_inference_settings(path)
