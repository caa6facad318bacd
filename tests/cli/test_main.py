"""The CLI's error boundary: user errors and OS errors are one line (exit 2), anything else is a
bug and keeps its traceback; every command's files are written atomically with the umask's
permissions (issue 19 items 5 and 13)."""
import errno
import os
import stat

import pytest
import torch

from anchordet import files
from anchordet.cli import main as cli_main
from anchordet.cli.main import main
from anchordet.config.inference import InferenceSettings
from anchordet.config.schema import DigitsOptions, ModelConfig
from anchordet.data.digits import DigitsDataset
from anchordet.weights_file import save_weights
from anchordet.errors import UserError
from anchordet.visualize import to_pil

TINY_MODEL = dict(depth=18, num_classes=10, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=1,
                  frozen_bn=False, score_thresh=0.0, max_detections=20)
SETTINGS = InferenceSettings("resize", 64, 64, class_names=[f"digit{i}" for i in range(10)],
                             category_ids=list(range(10)), dataset="digits",
                             digits=DigitsOptions(num_val=2, canvas_size=64, digits_per_image=(1, 3)))
TINY_TRAIN = ["--set", "data.digits.num_train=4", "--set", "data.digits.num_val=2", "--set", "solver.batch_size=2",
              "--set", "solver.epochs=1", "--set", "run.threads=1", "--set", "model.backbone_width=8",
              "--set", "model.fpn_channels=16", "--set", "model.head_channels=16", "--set", "solver.warmup_iters=1"]


def write_weights(path, settings=None):
    config = ModelConfig("retinanet_resnet_fpn", TINY_MODEL)
    torch.manual_seed(0)
    save_weights(path, config.build().eval(), config, (settings or SETTINGS).to_metadata())
    return path


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"anchordet {command}: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def scene(tmp_path):
    path = tmp_path / "scene.png"
    to_pil(DigitsDataset("test", DigitsOptions(num_val=1, canvas_size=64)).scene(0)[0]).save(path)
    return path


@pytest.fixture
def a_file(tmp_path):
    """A file where the commands are told to put a folder."""
    path = tmp_path / "taken"
    path.write_text("not a folder")
    return path


def test_a_bare_value_error_inside_a_command_is_a_bug_and_keeps_its_traceback(monkeypatch, capsys):
    from anchordet.cli import presets

    def buggy(args):
        raise ValueError("an internal check failed")

    monkeypatch.setattr(presets, "run", buggy)
    with pytest.raises(ValueError, match="an internal check failed"):
        main(["presets"])

    def user_mistake(args):
        raise UserError("--thing 3: expected 1 or 2")

    monkeypatch.setattr(presets, "run", user_mistake)
    assert main(["presets"]) == 2
    assert "--thing 3: expected 1 or 2" in one_line_error(capsys, "presets")


def test_describe_os_error_names_the_paths():
    assert cli_main.describe_os_error(OSError(errno.ENOSPC, "No space left on device", "out/r.json")) == \
        "out/r.json: No space left on device"
    assert cli_main.describe_os_error(OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")) == \
        "a -> b: Invalid cross-device link"
    assert cli_main.describe_os_error(FileNotFoundError("config file not found: x.yaml")) == \
        "config file not found: x.yaml"


def test_predict_into_a_path_under_a_file_is_one_line(tmp_path, scene, a_file, capsys):
    weights = write_weights(tmp_path / "w.safetensors")
    assert main(["predict", "-w", str(weights), str(scene), "--out", str(a_file / "out"), "--device", "cpu"]) == 2
    assert str(a_file) in one_line_error(capsys, "predict")


def test_evaluate_on_a_full_disk_is_one_line_and_keeps_the_previous_results(tmp_path, monkeypatch, capsys):
    weights = write_weights(tmp_path / "w.safetensors")
    out = tmp_path / "eval"
    out.mkdir()
    (out / "results.json").write_text("[]")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    assert main(["evaluate", "-w", str(weights), "--out", str(out), "--device", "cpu"]) == 2
    err = one_line_error(capsys, "evaluate")
    assert f"{out / 'metrics.json'}: No space left on device" in err
    assert sorted(os.listdir(out)) == ["results.json"] and (out / "results.json").read_text() == "[]"


def test_evaluate_read_only_output_is_one_line(tmp_path, monkeypatch, capsys):
    weights = write_weights(tmp_path / "w.safetensors")

    def read_only(prefix, suffix, dir):  # tests run as root, where chmod cannot make a folder read-only
        raise OSError(errno.EROFS, "Read-only file system", os.path.join(dir, f"{prefix}k2x9{suffix}"))

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    assert main(["evaluate", "-w", str(weights), "--out", str(tmp_path / "ro"), "--device", "cpu"]) == 2
    assert f"{tmp_path / 'ro' / 'metrics.json'}: Read-only file system" in one_line_error(capsys, "evaluate")


def test_export_and_data_into_a_path_under_a_file_are_one_line(tmp_path, a_file, capsys):
    weights = write_weights(tmp_path / "w.safetensors")
    assert main(["export", "-w", str(weights), "--format", "torchscript", "--size", "64", "64",
                 "--out", str(a_file / "m.pt")]) == 2
    assert str(a_file) in one_line_error(capsys, "export")
    assert main(["data", "digits", "--num-train", "1", "--num-val", "1", "--out", str(a_file / "digits")]) == 2
    assert str(a_file) in one_line_error(capsys, "data")


def test_train_into_a_path_under_a_file_is_one_line(a_file, capsys):
    args = ["train", "--no-progress", "-c", "retinanet_digits_fast", *TINY_TRAIN,
            "--set", f"run.out_dir={a_file / 'run'}"]
    assert main(args) == 2
    assert str(a_file) in one_line_error(capsys, "train")


def test_checkpoints_and_weights_get_the_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        args = ["train", "--no-progress", "-c", "retinanet_digits_fast", *TINY_TRAIN,
                "--set", f"run.out_dir={tmp_path / 'run'}"]
        assert main(args) == 0
    finally:
        os.umask(previous)
    for name in ("last.pt", "best.pt", "model.safetensors", "best.safetensors", "config.yaml", "curves.png"):
        assert stat.S_IMODE(os.stat(tmp_path / "run" / name).st_mode) == 0o644, name  # mkstemp alone: 0o600


def test_device_options_are_checked_by_the_parser(tmp_path, scene, capsys):  # issue 19 item 10
    """``--batch-size 0`` and ``--score-thresh nan`` of predict: tests/cli/test_predict_options.py."""
    weights = write_weights(tmp_path / "w.safetensors")
    for command in (["predict", "-w", str(weights), str(scene)], ["evaluate", "-w", str(weights)]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--device", "tpu"])
        assert exit_.value.code == 2
        assert "argument --device: 'tpu' is not a device; use auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "-w", str(weights), "--batch-size", "0"])
    assert "argument --batch-size: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_train_with_no_classes_stops_before_the_run_folder_exists(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--no-progress", "-c", "retinanet_digits_fast", "--set", "model.num_classes=0",
                 "--set", f"run.out_dir={out}"]) == 2
    assert "model.num_classes must be an integer in 1..100000, got 0" in one_line_error(capsys, "train")
    assert main(["train", "--no-progress", "-c", "retinanet_digits_fast", "--set", "run.device=tpu",
                 "--set", f"run.out_dir={out}"]) == 2
    assert "run.device: 'tpu' is not a device" in one_line_error(capsys, "train")
    assert not out.exists()
