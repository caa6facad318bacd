"""`anchordet train --resume` with a config whose network differs from the checkpoint's: one
line naming the checkpoint, the first mismatching tensors and the changed options (issue 19 item 7)."""
import pytest

from anchordet.cli.main import main

TINY = ["--set", "data.digits.num_train=4", "--set", "data.digits.num_val=2", "--set", "solver.batch_size=2",
        "--set", "solver.epochs=1", "--set", "run.threads=1", "--set", "model.backbone_width=8",
        "--set", "model.fpn_channels=16", "--set", "model.head_channels=16", "--set", "solver.warmup_iters=1"]


@pytest.fixture(scope="module")
def last_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--no-progress", "-c", "retinanet_digits_fast", *TINY, "--set", f"run.out_dir={out}"]) == 0
    return out / "last.pt"


@pytest.mark.parametrize("change,expected", [
    ("model.num_classes=5", ["head.cls_output.weight: file (90, 16, 3, 3) vs model (45, 16, 3, 3)",
                             "model.num_classes=10, now 5"]),
    ("model.depth=34", ["missing (", "backbone.layer1.2.conv1.weight", "model.depth=18, now 34"]),
])
def test_resume_with_another_network_is_one_line(last_checkpoint, tmp_path, capsys, change, expected):
    code = main(["train", "--no-progress", "--resume", str(last_checkpoint), "--set", change,
                 "--set", "solver.epochs=2", "--set", f"run.out_dir={tmp_path / 'resumed'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"anchordet train: error: {last_checkpoint}: the weights do not fit the model")
    for text in expected:
        assert text in err


def test_resume_with_other_trainable_layers_names_the_optimizer_state(last_checkpoint, tmp_path, capsys):
    code = main(["train", "--no-progress", "--resume", str(last_checkpoint), "--set", "model.trainable_layers=3",
                 "--set", "solver.epochs=2", "--set", f"run.out_dir={tmp_path / 'resumed'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "the optimizer state does not fit" in err and "model.trainable_layers=5, now 3" in err


def test_resume_from_a_checkpoint_without_training_state_is_one_line(last_checkpoint, tmp_path, capsys):
    import torch

    state = torch.load(last_checkpoint, weights_only=True)
    stripped = tmp_path / "weights_only.pt"
    torch.save({"model": state["model"], "config": state["config"]}, stripped)
    code = main(["train", "--no-progress", "--resume", str(stripped), "--set", f"run.out_dir={tmp_path / 'r'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "not a resumable training checkpoint (no optimizer, scheduler, epoch" in err
