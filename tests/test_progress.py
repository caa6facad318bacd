"""Progress output: a tqdm bar on a terminal only; in a file or a pipe, plain lines (one every
`every` steps and one at the end), never carriage-return frames. Through `anchordet train` too."""
import io

from anchordet.cli.main import main
from anchordet.progress import Progress, write
from tests.engine.test_trainer import TINY


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_in_a_file_it_prints_a_line_every_n_steps_and_at_the_end():
    stream = io.StringIO()
    bar = Progress(10, "epoch 2/5", initial=2, every=4, stream=stream)
    for step in range(8):
        bar.update(1, loss=f"{1.0 / (step + 1):.3f}")
    bar.close()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[:2] == ["epoch 2/5: 4/10, loss 0.500", "epoch 2/5: 8/10, loss 0.167"]
    assert lines[2].startswith("epoch 2/5: 10/10, loss 0.125, ") and lines[2].endswith(" s") and len(lines) == 3


def test_on_a_terminal_it_draws_the_bar():
    stream = Terminal()
    bar = Progress(10, "epoch 1/5", every=4, stream=stream)
    for _ in range(10):
        bar.update(1, loss="0.5")
    bar.close()
    assert "\r" in stream.getvalue() and "epoch 1/5" in stream.getvalue()


def test_disabled_and_end_line_off_print_nothing():
    stream = io.StringIO()
    for options in ({"enabled": False}, {"every": 0, "end_line": False}):
        bar = Progress(10, "evaluating", stream=stream, **options)
        bar.update(10)
        bar.close()
    assert stream.getvalue() == ""


def test_write_prints_a_plain_line_off_a_terminal():
    stream = io.StringIO()
    write("epoch 3: AP 0.5", stream=stream)
    assert stream.getvalue() == "epoch 3: AP 0.5\n"


def test_training_into_a_pipe_logs_lines_not_bar_frames(tmp_path, capfd):
    args = ["train", "--config", "retinanet_digits"]
    for item in TINY + ["run.log_every=2", "solver.epochs=2", "run.eval_every=1", f"run.out_dir={tmp_path}"]:
        args += ["--set", item]
    assert main(args) == 0
    out, err = capfd.readouterr()
    assert "\r" not in out + err
    progress = [line.split(",")[0] for line in err.splitlines() if line.startswith("epoch ")]
    assert progress == ["epoch 1/2: 2/4", "epoch 1/2: 4/4", "epoch 2/2: 2/4", "epoch 2/2: 4/4"]
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("epoch ")] == ["epoch 1", "epoch 2"]
