import pytest

from anchordet.config.load import load_config
from anchordet.config.presets import PRESETS
from anchordet.config.schema import ConfigError, DigitsOptions, ExperimentConfig


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
    ("run.precision=fp8", "run.precision: 'fp8' is not one of fp32, bf16, fp16, auto"),
    ("run.channels_last=sometimes", "run.channels_last: 'sometimes' is not one of auto, true, false"),
    ("solver.amp=bf16", "unknown key solver.amp"),  # gone: run.precision replaces it
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


@pytest.mark.parametrize("override, message", [  # issue 19 item 10: refused when the config is read
    ("model.num_classes=0", "model.num_classes must be an integer in 1..100000, got 0"),
    ("model.num_classes=-3", "model.num_classes must be an integer in 1..100000, got -3"),
    ("run.device=tpu", "run.device: 'tpu' is not a device; use auto, cpu, cuda or cuda:N"),
    ("run.device=cuda:x", "run.device: 'cuda:x' is not a device"),
    ("solver.base_lr=.nan", "solver.base_lr must be a number > 0, got nan"),
    ("solver.warmup_factor=2", "solver.warmup_factor must be in [0, 1], got 2.0"),
    ("solver.weight_decay=-1", "solver.weight_decay must be >= 0"),
    ("data.min_size=0", "data.min_size: expected a positive integer"),
    ("data.fixed_size=0", "data.fixed_size must be >= 1, got 0"),
    ("data.digits.num_val=-1", "digits num_train and num_val must be >= 0"),
    ("data.num_workers=-1", "data.num_workers must be >= 0"),
    ("run.log_every=0", "run.log_every must be >= 1"),
    ("run.max_minutes=.inf", "run.max_minutes must be >= 0, got inf"),
])
def test_values_out_of_range_are_refused_when_the_config_is_read(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_config("retinanet_digits", [override])
    assert load_config("retinanet_digits", ["run.device=cuda:1"]).run.device == "cuda:1"


def test_precision_and_channels_last_options(tmp_path):
    from anchordet.config.schema import RunConfig

    assert RunConfig().precision == "fp32" and RunConfig().channels_last == "auto"  # defaults
    digits = ("retinanet_digits", "retinanet_digits_fast", "ssd_digits", "faster_rcnn_digits")
    assert {name: load_config(name).run.precision for name in digits} == dict.fromkeys(digits, "auto")
    assert load_config("retinanet_r50_coco").run.precision == "fp32"  # real datasets: fp32 unless asked
    config = load_config("retinanet_digits", ["run.precision=bf16", "run.channels_last=false"])
    assert config.run.precision == "bf16" and config.run.channels_last is False
    path = tmp_path / "config.yaml"  # saved with the run
    path.write_text(config.to_yaml())
    assert load_config(str(path)).run == config.run


@pytest.mark.parametrize("amp, precision", [("none", "fp32"), ("bf16", "bf16"), ("fp16", "fp16")])
def test_configs_written_with_solver_amp_read_it_as_run_precision(amp, precision):
    values = PRESETS["retinanet_digits"].to_dict()
    values["solver"]["amp"] = amp
    del values["run"]["precision"]
    config = ExperimentConfig.from_dict(values)
    assert config.run.precision == precision and "amp" not in config.to_dict()["solver"]



def test_voc_presets_read_the_voc_templates():
    from pathlib import Path

    import yaml as _yaml

    templates = Path(__file__).resolve().parents[2] / "docs" / "datasets"
    for name, config in PRESETS.items():
        if name.endswith("_voc"):
            assert (templates / config.data.dataset).is_file(), name
    train = _yaml.safe_load((templates / "voc0712.yaml").read_text())["train"]
    assert train == [{"root": "VOC2007", "image_set": "trainval"}, {"root": "VOC2012", "image_set": "trainval"}]


def test_digits_options_are_one_nested_section():
    config = load_config("retinanet_digits", ["data.digits.num_train=5", "data.digits.digits_per_image=[2, 3]"])
    assert config.data.digits == DigitsOptions(num_train=5, num_val=300, digits_per_image=(2, 3))
    assert config.to_dict()["data"]["digits"]["digits_per_image"] == [2, 3]
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    whole = load_config("retinanet_digits", ["data.digits={num_val: 7}"])
    assert whole.data.digits == DigitsOptions(num_val=7)  # a mapping replaces the section: other fields default
    with pytest.raises(ConfigError, match="unknown key data.digits.num_trian; known: num_train"):
        load_config("retinanet_digits", ["data.digits.num_trian=5"])
    with pytest.raises(ConfigError, match="data.hflip has no fields"):
        load_config("retinanet_digits", ["data.hflip.x=1"])
    with pytest.raises(ConfigError, match="data.digits.seed: expected an integer, got 'x'"):
        load_config("retinanet_digits", ["data.digits.seed=x"])
    with pytest.raises(ConfigError, match=r"digit_size \(4, 10\) must satisfy 8 <= min <= max"):
        load_config("retinanet_digits", ["data.digits.digit_size=[4, 10]"])
