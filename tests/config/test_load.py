"""``load_config``: presets by name, YAML files (round trip), errors that name the file."""
import pytest
import yaml

from anchordet.config.load import load_config
from anchordet.config.presets import PRESETS
from anchordet.config.schema import ConfigError, ExperimentConfig, apply_overrides


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="unknown preset 'retinanet_digitz'.*retinanet_digits"):
        load_config("retinanet_digitz")


def test_yaml_round_trip_and_file_loading(tmp_path):
    config = apply_overrides(PRESETS["retinanet_digits"], ["solver.epochs=2"])
    path = tmp_path / "exp.yaml"
    path.write_text(config.to_yaml())
    again = load_config(str(path))
    assert again == config
    assert ExperimentConfig.from_dict(yaml.safe_load(config.to_yaml())).to_dict() == config.to_dict()


def test_yaml_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("solver: {epochs: 2}\nmodle: {}\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown section"):
        load_config(str(path))
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(str(tmp_path / "missing.yaml"))
