"""Each training option of issue 18, given a bad value on the command line: one line, exit 2."""
import pytest

from anchordet.cli.main import main


@pytest.mark.parametrize("override, message", [
    ("data.min_size=[640, 0]", "data.min_size: expected a positive integer or a non-empty list of them, got [640, 0]"),
    ("data.min_size=[640, 900]", "data.max_size: must be an integer >= the largest data.min_size (900), got 256"),
    ("data.aspect_ratio_groups=0", "data.aspect_ratio_groups: must be >= 1 (1: no grouping), got 0"),
    ("solver.ema_decay=1.0", "solver.ema_decay: must be in (0, 1), e.g. 0.999 (0 turns the average off), got 1.0"),
    ("solver.accumulate_steps=0", "solver.accumulate_steps: must be >= 1 (1: no accumulation), got 0"),
    ("model.sync_batch_norm=maybe", "model.sync_batch_norm: expected true or false, got 'maybe'"),
    ("run.patience=-2", "run.patience: must be >= 0 (0: no early stopping), got -2"),
])
def test_bad_values_are_one_line(override, message, capsys, tmp_path):
    assert main(["train", "--config", "retinanet_digits", "--set", override, "--set", f"run.out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written
