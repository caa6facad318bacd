"""`anchordet presets`: one line per preset with its input size, or one preset as YAML."""
import yaml

from anchordet.cli.main import main
from anchordet.config.presets import PRESETS
from anchordet.config.schema import ExperimentConfig


def test_listing_names_every_preset_with_its_input_size(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)
    by_name = {line.split()[0]: line for line in lines}
    assert by_name["retinanet_digits"].endswith("on digits at 256 px, 20 epochs at batch 32; augment: none")
    assert by_name["retinanet_digits_fast"].endswith("on digits at 128 px, 28 epochs at batch 32; augment: none")
    assert by_name["retinanet_digits_large"].endswith("augment: 256 px windows x64")  # issue 25's windows
    assert by_name["ssd300_voc"].endswith("augment: ssd (colour, zoom out, IoU crop), hflip")
    assert by_name["retinanet_r50_coco"].endswith("augment: hflip")
    assert "on voc0712.yaml at 300x300" in by_name["ssd300_voc"]  # fixed-size SSD input
    assert "at 600-1000 px" in by_name["retinanet_r50_voc"]  # shorter side 600, longer at most 1000
    assert "at 640..800-1333 px (multi-scale)" in by_name["retinanet_r50_coco"]  # Detectron2's 640..800 list


def test_one_preset_prints_as_yaml_that_loads_back_equal(capsys):
    assert main(["presets", "faster_rcnn_digits"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert ExperimentConfig.from_dict(printed) == PRESETS["faster_rcnn_digits"]


def test_unknown_preset_is_one_line(capsys):
    assert main(["presets", "retinanet_digitz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "retinanet_digitz" in err[0] and "retinanet_digits" in err[0]
