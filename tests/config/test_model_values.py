"""A weights file's model metadata is checked field by field before any model is built (issue
28, item 8): a file without `depth` gave "TypeError: retinanet_resnet_fpn() missing 1 required
positional argument: 'depth'", a negative `fpn_channels` "RuntimeError: Trying to create tensor
with negative dimension"; each is now one line naming the file, the field and the value. The
same checks hold for a YAML config's model section."""
import json

import pytest
import torch
from safetensors.torch import save

from anchordet.cli.main import main
from anchordet.config.model import ModelConfig
from anchordet.config.values import ConfigError
from anchordet.errors import UserError
from anchordet.weights_file import load_detector
from tests.helpers import TINY_RETINANET, TINY_SSD

CASES = [
    ("without depth", {k: v for k, v in TINY_RETINANET.items() if k != "depth"},
     "model.depth is required (retinanet_resnet_fpn has no default for it)"),
    ("negative fpn_channels", {**TINY_RETINANET, "fpn_channels": -16}, "model.fpn_channels must be >= 1, got -16"),
    ("zero head_channels", {**TINY_RETINANET, "head_channels": 0}, "model.head_channels must be >= 1, got 0"),
    ("negative head_num_convs", {**TINY_RETINANET, "head_num_convs": -1}, "model.head_num_convs must be >= 0, got -1"),
    ("NaN score_thresh", {**TINY_RETINANET, "score_thresh": float("nan")}, "model.score_thresh must be finite, got nan"),
]


def weights_with(path, factory: str, args: dict, like: dict = TINY_RETINANET):
    """A safetensors file holding a valid tiny model's tensors and ``args`` as its model metadata."""
    torch.manual_seed(0)
    tensors = {k: v.contiguous() for k, v in ModelConfig(factory, like).build().state_dict().items()}
    path.write_bytes(save(tensors, metadata={"anchordet_model": json.dumps({"factory": factory, **args})}))
    return path


@pytest.mark.parametrize("name,args,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_model_metadata_is_one_line_naming_the_field(tmp_path, capsys, monkeypatch, name, args, expected):
    path = weights_with(tmp_path / "w.safetensors", "retinanet_resnet_fpn", args)
    built = []
    monkeypatch.setattr(ModelConfig, "build", lambda self: built.append(self))  # nothing may be built
    with pytest.raises(UserError) as info:
        load_detector(path)
    assert str(info.value) == f"{path}: metadata anchordet_model: {expected}" and not built
    monkeypatch.undo()
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    assert main(["predict", "-w", str(path), str(image), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"anchordet predict: error: {path}: metadata anchordet_model: {expected}\n"


def test_nested_integer_lists_are_checked_too(tmp_path):
    bad = {**TINY_SSD, "extra_layers": [[16, -32, 3, 2, 1]]}
    with pytest.raises(UserError, match=r"model\.extra_layers must be >= 0, got \[\[16, -32, 3, 2, 1\]\]"):
        load_detector(weights_with(tmp_path / "w.safetensors", "ssd_vgg16", bad, TINY_SSD))


def test_a_yaml_config_gets_the_same_checks_and_valid_values_pass():
    with pytest.raises(ConfigError, match="config: model.depth is required"):
        ModelConfig("retinanet_resnet_fpn", {"num_classes": 3}).build()
    with pytest.raises(ConfigError, match="model.fpn_channels must be >= 1, got -1"):
        ModelConfig("retinanet_resnet_fpn", {**TINY_RETINANET, "fpn_channels": -1}).build()
    # 0 where 0 means "none of them", and negative floats (an anchor offset), are values
    ModelConfig("retinanet_resnet_fpn", {**TINY_RETINANET, "head_num_convs": 0, "trainable_layers": 0,
                                         "anchor_offset": -0.5}).build()
