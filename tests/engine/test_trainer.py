"""The training engine through the real `anchordet train` command, on a tiny RetinaNet and tiny
digit scenes: outputs, exact resume, the NaN guard, Ctrl-C, DDP with torchrun on CPU."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from anchordet.cli.main import main
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.engine.logger import read_metrics
from anchordet.runtime.precision import cpu_has_native_bf16

TINY = ["model.backbone_width=8", "model.fpn_channels=16", "model.head_channels=16", "model.head_num_convs=1",
        "data.digits.num_train=16", "data.digits.num_val=4", "data.digits.canvas_size=64",
        "data.min_size=64", "data.max_size=64", "data.num_workers=0", "solver.batch_size=4", "solver.warmup_iters=2",
        "run.log_every=1", "run.threads=1"]


def train(out: Path, *extra: str, resume: str | None = None) -> int:
    args = ["train", "--no-progress"]
    args += ["--resume", resume] if resume else ["--config", "retinanet_digits"]
    for item in (TINY if not resume else []) + [f"run.out_dir={out}", *extra]:
        args += ["--set", item]
    return main(args)


def test_train_writes_checkpoints_metrics_and_events(tmp_path):
    assert train(tmp_path, "solver.epochs=2", "run.eval_every=1") == 0
    for name in ("config.yaml", "last.pt", "best.pt", "model.safetensors", "best.safetensors", "curves.png"):
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["type"] == "train"]
    assert [r["iteration"] for r in train_records] == list(range(1, 9))  # 16 images / 4 = 4 per epoch
    assert all(r["loss"] > 0 and r["loss"] == pytest.approx(r["loss_cls"] + r["loss_box"]) for r in train_records)
    assert [r["epoch"] for r in records if r["type"] == "eval"] == [1, 2]
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["iteration"], state["iteration_in_epoch"]) == (2, 8, 0)
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(weights[k], v) for k, v in state["model"].items())


NATIVE_BF16 = pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16")


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=NATIVE_BF16)])
def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, precision):
    """Bit-exact in bf16 too: at this 64 px size P7's conv meets oneDNN's bf16 weight-gradient bug
    (runtime.precision._Float32WhereOneDNNFails), which made bf16 runs differ from call to call."""
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    common = ["solver.epochs=2", "run.eval_every=0", "data.hflip=true",  # flips: augmentation must replay exactly
              f"run.precision={precision}"]
    assert train(straight, *common) == 0
    assert train(interrupted, *common, "run.stop_after_iters=3") == 0  # stops mid-epoch 1 (4 batches per epoch)
    state = load_checkpoint(interrupted / "last.pt")
    assert (state["epoch"], state["iteration_in_epoch"]) == (0, 3)
    assert main(["train", "--no-progress", "--resume", str(interrupted / "last.pt"),
                 "--set", "run.stop_after_iters=0"]) == 0
    expected = load_checkpoint(straight / "last.pt")["model"]
    resumed = load_checkpoint(interrupted / "last.pt")["model"]
    assert expected.keys() == resumed.keys()
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key


MIXED_SHAPES = [(48, 64), (64, 48), (40, 40), (36, 64)] * 4  # landscape, portrait, square, wide: 16 images


def file_dataset_overrides(tmp_path, **extra) -> list[str]:
    from tests.helpers import write_coco_dataset

    data_yaml = write_coco_dataset(tmp_path / "data", MIXED_SHAPES)
    options = {"data.dataset": str(data_yaml), "model.num_classes": 2, "data.min_size": "[32, 48]",
               "data.max_size": 64, **extra}
    return [f"{k}={v}" for k, v in options.items()]


def test_resume_with_aspect_ratio_groups_and_multi_scale_is_exact(tmp_path):
    """A COCO file dataset of mixed shapes: batches grouped by aspect ratio, a shorter side
    drawn per batch, flips; interrupt + resume equals the uninterrupted run bit for bit."""
    common = ["solver.epochs=2", "run.eval_every=0", "data.hflip=true", *file_dataset_overrides(tmp_path)]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert train(straight, *common) == 0
    assert train(interrupted, *common, "run.stop_after_iters=3") == 0
    assert main(["train", "--no-progress", "--resume", str(interrupted / "last.pt"),
                 "--set", "run.stop_after_iters=0"]) == 0
    expected = load_checkpoint(straight / "last.pt")["model"]
    resumed = load_checkpoint(interrupted / "last.pt")["model"]
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key


def test_the_trainer_groups_images_of_files_but_not_digits(tmp_path):
    from anchordet.config.load import load_config
    from anchordet.engine.trainer import Trainer

    def groups(overrides):
        trainer = Trainer(load_config("retinanet_digits", overrides), progress=False)
        trainer.close()  # unlocks run.out_dir for the next one
        return trainer.train_groups

    overrides = TINY + [f"run.out_dir={tmp_path / 'run'}", *file_dataset_overrides(tmp_path)]
    assert groups(overrides) == [1, 0, 1, 1] * 4  # width >= height: group 1
    assert groups(overrides + ["data.aspect_ratio_groups=4"]) == [2, 1, 2, 3] * 4  # 4/3 in [1, 1.41), 3/4 in [0.71, 1), 64/36 >= 1.41
    assert groups(overrides + ["data.aspect_ratio_groups=1"]) is None
    assert groups(TINY + [f"run.out_dir={tmp_path / 'digits'}"]) is None  # generated square scenes: nothing to group


def test_nan_loss_stops_with_iteration_and_image_ids(tmp_path, monkeypatch, capsys):
    from anchordet.detectors.retinanet import RetinaNet

    original = RetinaNet.loss
    calls = {"n": 0}

    def loss_with_nan(self, images, targets):
        losses = original(self, images, targets)
        calls["n"] += 1
        if calls["n"] == 6:  # second batch of epoch 2
            losses["loss_box"] = losses["loss_box"] * float("nan")
        return losses

    monkeypatch.setattr(RetinaNet, "loss", loss_with_nan)
    assert train(tmp_path, "solver.epochs=2", "run.eval_every=0") == 2
    message = capsys.readouterr().err
    assert "loss is not finite at iteration 6 (epoch 2, batch 2)" in message
    assert "loss_box=nan" in message and "images of the batch: [" in message
    assert f"the last good checkpoint is {tmp_path / 'last.pt'}" in message
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 4  # end of epoch 1, untouched by the NaN


def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path, monkeypatch):
    from anchordet.engine.trainer import Trainer

    original = Trainer._step
    calls = {"n": 0}

    def interrupt_on_third(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Trainer, "_step", interrupt_on_third)
    assert train(tmp_path, "solver.epochs=1", "run.eval_every=0") == 130
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["iteration"], state["iteration_in_epoch"]) == (0, 2, 2)


@pytest.mark.parametrize("args, message", [
    (["train", "--config", "no_such_preset"], "unknown preset 'no_such_preset'"),
    (["train", "--config", "retinanet_digits", "--set", "solver.epochz=1"], "unknown key solver.epochz"),
    (["train", "--config", "retinanet_digits", "--set", "solver.epochs=two"], "solver.epochs: expected an integer"),
    (["train", "--config", "retinanet_digits", "--set", "data.dataset=/no/such/data.yaml"], "/no/such/data.yaml"),
    (["train", "--config", "/no/such/config.yaml"], "config file not found: /no/such/config.yaml"),
    (["train", "--resume", "/no/such/last.pt"], "checkpoint not found: /no/such/last.pt"),
])
def test_bad_command_lines_get_one_clear_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


DDP_SCRIPT = """
import sys
from anchordet.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def one_process_first_step(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    assert train(out, *ONE_SGD_STEP) == 0
    return load_checkpoint(out / "last.pt")["model"]


# Plain SGD (no momentum, no decay) for one step: equal weights after it mean equal gradients of
# the global batch. Frozen BN, so batch statistics do not depend on the split.
# fp32: one step on B images equals 2 processes' steps on B / 2 each to float rounding (in bf16, the
# digits presets' "auto" where the CPU has it, each batch shape rounds its own way)
ONE_SGD_STEP = ["solver.optimizer=sgd", "solver.epochs=1", "run.stop_after_iters=1", "run.eval_every=0",
                "solver.momentum=0.0", "solver.weight_decay=0.0", "model.frozen_bn=true", "solver.clip_grad_norm=0.0",
                "solver.warmup_iters=0", "run.precision=fp32"]


def _free_port() -> int:
    """A port nobody listens on now (a fixed one collides with a concurrent run of the suite)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("launcher", ["torchrun", "procs"])
def test_two_cpu_processes_take_the_same_first_step_as_one_process(launcher, one_process_first_step, tmp_path):
    """`torchrun --nproc_per_node 2 ... train` and `anchordet train --procs 2` (gloo on CPU)."""
    multi = tmp_path / "ddp"
    overrides = []
    for item in TINY + [f"run.out_dir={multi}", *ONE_SGD_STEP]:
        overrides += ["--set", item]
    if launcher == "torchrun":
        script = tmp_path / "run.py"
        script.write_text(DDP_SCRIPT)
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
                   str(script), "train", "--no-progress", "--config", "retinanet_digits", *overrides]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    else:
        assert main(["train", "--no-progress", "--procs", "2", "--config", "retinanet_digits", *overrides]) == 0
    got = load_checkpoint(multi / "last.pt")["model"]
    for key in one_process_first_step:
        torch.testing.assert_close(got[key], one_process_first_step[key], rtol=1e-5, atol=1e-6, msg=key)
    assert load_checkpoint(multi / "last.pt")["iteration"] == 1


def test_procs_reports_a_failing_process_in_one_line(tmp_path, capsys):
    """A NaN in a child process stops the run with the guard's message, as in one process."""
    overrides = []
    for item in TINY + [f"run.out_dir={tmp_path}", "solver.epochs=1", "solver.base_lr=1e30", "solver.clip_grad_norm=0.0"]:
        overrides += ["--set", item]
    assert main(["train", "--no-progress", "--procs", "2", "--config", "retinanet_digits", *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "iteration" in err[0] and "Traceback" not in err[0]


def test_demo_with_a_time_budget_still_evaluates_and_predicts(tmp_path, capsys):
    """`anchordet demo` on a budget too small for its epochs: it stops training, then scores and
    predicts with what it learned (and says how to continue)."""
    overrides = []
    tiny_ssd = ["model.width=8", "data.digits.num_train=16", "data.digits.num_val=4", "solver.batch_size=4",
                "solver.warmup_iters=2", "run.log_every=1", "run.threads=1"]  # the demo trains ssd_digits
    for item in tiny_ssd + ["solver.epochs=50", "run.fit_epochs_to_budget=false"]:  # the safety net alone
        overrides += ["--set", item]
    assert main(["demo", "--out", str(tmp_path), "--epochs", "50", "--minutes", "0.05", *overrides]) == 0
    out = capsys.readouterr().out
    assert "budget stopped training" in out and "test scenes: COCO AP" in out
    assert (tmp_path / "run" / "model.safetensors").is_file() and (tmp_path / "run" / "curves.png").is_file()
    assert len(list((tmp_path / "predictions").glob("*.png"))) == 4  # the 4 test scenes of TINY
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] < 50 * 4


def test_epochs_that_fit_a_budget():
    from anchordet.engine.budget import epochs_that_fit

    # 40 iterations in 20 s, 0.5 s each from now on, 6 minutes: (0.95 * 360 - 20) / 0.5 = 644 more,
    # 684 in all = 11 epochs of 62 iterations
    assert epochs_that_fit(0.5, 20.0, 40, 360.0, 62, 1, 28) == 11
    assert epochs_that_fit(0.1, 20.0, 40, 360.0, 62, 1, 28) == 28  # 52 would fit: never more than asked
    assert epochs_that_fit(0.5, 400.0, 40, 360.0, 62, 1, 28) == 1  # over budget: the epoch under way ends
    assert epochs_that_fit(0.5, 20.0, 40, 360.0, 4, 11, 28) == 28  # 171 epochs of 4 fit
    assert epochs_that_fit(0.5, 20.0, 40, 30.0, 4, 11, 28) == 14  # 17 more iterations: 57 = 14 epochs
    assert epochs_that_fit(0.5, 20.0, 40, 21.0, 4, 11, 28) == 11  # none more: 10 fit, but epoch 11 is under way


def test_fit_epochs_to_budget_shortens_the_schedule_and_saves_the_count(tmp_path, monkeypatch):
    """The count chosen after the timed iterations becomes solver.epochs: the run stops there,
    the cosine schedule ends at 0 there, and config.yaml / last.pt say so (a resume continues it)."""
    from anchordet.engine import budget as budget_module

    calls = []

    def fake_fit(**arguments):
        calls.append(arguments)
        return 3

    monkeypatch.setattr(budget_module, "FIT_MEASURE_FROM", 2)
    monkeypatch.setattr(budget_module, "FIT_MEASURE_TO", 6)
    monkeypatch.setattr(budget_module, "epochs_that_fit", fake_fit)
    assert train(tmp_path, "solver.epochs=20", "run.eval_every=20", "run.max_minutes=60",
                 "run.fit_epochs_to_budget=true") == 0
    (arguments,) = calls
    assert {k: v for k, v in arguments.items() if not k.startswith("seconds")} == dict(
        iterations_done=6, budget_seconds=3600.0, iters_per_epoch=4, min_epochs=2, max_epochs=20)  # iteration 6 is in epoch 2
    assert 0 < arguments["seconds_per_iter"] < arguments["seconds_used"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["type"] == "train"]
    assert train_records[-1]["iteration"] == 12  # 3 epochs of 4
    assert train_records[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine over 12 iterations, not 80
    assert [r["epoch"] for r in records if r["type"] == "eval"] == [3]
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["solver"]["epochs"] == 3 and saved["run"]["fit_epochs_to_budget"] is False
    assert load_checkpoint(tmp_path / "last.pt")["config"]["solver"]["epochs"] == 3


def test_fit_epochs_to_budget_needs_a_budget(capsys):
    assert main(["train", "--config", "retinanet_digits", "--set", "run.fit_epochs_to_budget=true"]) == 2
    assert "run.max_minutes" in capsys.readouterr().err


def test_precision_bf16_trains_in_bf16_or_falls_back_to_fp32_in_one_line(tmp_path, monkeypatch, capsys):
    """run.precision=bf16 (or --precision bf16): the network in bf16 where the CPU has it (other
    weights than fp32 after two steps); elsewhere one line, then exactly the fp32 run."""
    from anchordet.runtime import precision as precision_module

    common = ("solver.epochs=1", "run.eval_every=0", "run.stop_after_iters=2")
    assert train(tmp_path / "fp32", *common, "run.precision=fp32") == 0
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    capsys.readouterr()
    assert train(tmp_path / "fallback", *common, "run.precision=bf16") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "precision" in line]
    assert len(lines) == 1 and "no native bf16" in lines[0] and "running in fp32" in lines[0]
    assert train(tmp_path / "auto", *common, "run.precision=auto") == 0  # the digits presets' setting
    assert not [line for line in capsys.readouterr().err.splitlines() if "precision" in line]  # silent
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    args = ["train", "--no-progress", "--config", "retinanet_digits", "--precision", "bf16"]
    for item in TINY + [f"run.out_dir={tmp_path / 'bf16'}", *common]:
        args += ["--set", item]
    assert main(args) == 0
    assert yaml.safe_load((tmp_path / "bf16" / "config.yaml").read_text())["run"]["precision"] == "bf16"
    weights = {name: load_checkpoint(tmp_path / name / "last.pt")["model"]
               for name in ("fp32", "fallback", "auto", "bf16")}
    assert all(torch.equal(weights["fallback"][k], v) for k, v in weights["fp32"].items())
    assert all(torch.equal(weights["auto"][k], v) for k, v in weights["fp32"].items())
    ran = {name: {r["precision"] for r in read_metrics(tmp_path / name / "metrics.jsonl") if r["type"] == "train"}
           for name in ("fp32", "fallback", "auto", "bf16")}
    assert ran == {"fp32": {"fp32"}, "fallback": {"fp32"}, "auto": {"fp32"}, "bf16": {"bf16"}}
    assert load_checkpoint(tmp_path / "auto" / "last.pt")["extra"]["precision"] == "fp32"
    changed = [k for k, v in weights["fp32"].items() if v.is_floating_point() and not torch.equal(weights["bf16"][k], v)]
    assert len(changed) > len(weights["fp32"]) // 2
    assert all(torch.isfinite(v).all() for v in weights["bf16"].values() if v.is_floating_point())
