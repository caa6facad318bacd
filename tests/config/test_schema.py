import pytest

from anchordet.config.load import load_config
from anchordet.config.presets import PRESETS
from anchordet.config.schema import ConfigError, ExperimentConfig


def test_overrides_are_typed_by_the_dataclass_and_the_factory():
    config = load_config("retinanet_digits", ["solver.epochs=3", "solver.base_lr=1e-3", "data.hflip=true",
                                              "model.anchor_base_sizes=[8, 16, 32, 64, 128]", "solver.steps=[2]"])
    assert config.solver.epochs == 3 and config.solver.base_lr == 0.001 and config.data.hflip is True
    assert config.model.args["anchor_base_sizes"] == [8, 16, 32, 64, 128]
    assert config.solver.steps == (2,)


@pytest.mark.parametrize("override, message", [
    ("solver.epochs=many", "solver.epochs: expected an integer, got 'many'"),
    ("solver.epoch=3", "unknown key solver.epoch"),
    ("model.depthh=18", "model.depthh is not an option of retinanet_resnet_fpn"),
    ("model.depth=deep", "model.depth: expected an integer"),
    ("data.hflip=maybe", "data.hflip: expected true or false"),
    ("solver.schedule=linear", "solver.schedule: 'linear' is not one of step, cosine"),
    ("nodots=1", "section.key"),
    ("solver.epochs", "expected section.key=value"),
])
def test_bad_overrides_name_the_key_and_value(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config("retinanet_digits", [override])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid_and_its_model_arguments_exist(name):
    config = PRESETS[name]
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    assert config.model.num_classes >= 1


def test_linear_scaling_rule():
    config = load_config("retinanet_digits", ["solver.batch_size=32", "solver.base_batch_size=16", "solver.base_lr=0.01"])
    assert config.solver.lr == pytest.approx(0.02)
