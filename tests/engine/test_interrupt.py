"""Ctrl-C and SIGTERM during training, through the real `anchordet train` command: the processes of
a `--procs 2` run stop at the same step, save one checkpoint and exit 130 (143 for SIGTERM), a
second signal quits at once, and a stop during the end-of-epoch evaluation is evaluated on resume."""
import faulthandler
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from anchordet.cli.main import main
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.engine.run_folder import RunFolder
from tests.engine.test_trainer import TINY

LONG = ["solver.epochs=50", "run.eval_every=1"]  # 200 iterations: never reached, every signal lands mid-run
HANG_S = 120  # far above a stop's few seconds: reaching it means the processes hung

# Spawned processes re-import this script as __mp_main__, so the slow save is theirs too.
SLOW_STOP_SCRIPT = """
import sys, time
from anchordet.engine import interrupt, trainer

save = trainer.Trainer._save

def slow_save(self, name):
    if interrupt.requested():
        print("saving slowly", file=sys.stderr, flush=True)
        time.sleep(HANG_S)
    return save(self, name)

trainer.Trainer._save = slow_save

if __name__ == "__main__":
    from anchordet.cli.main import main
    sys.exit(main(sys.argv[1:]))
""".replace("HANG_S", str(HANG_S))


def command(out: Path, *extra: str, procs: int = 2, resume: bool = False, script: Path | None = None) -> list[str]:
    start = [str(script)] if script else ["-m", "anchordet.cli.main"]
    args = [sys.executable, *start, "train", "--procs", str(procs)]
    args += ["--resume", str(out / "last.pt")] if resume else ["--config", "retinanet_digits"]
    for item in ([] if resume else TINY + [f"run.out_dir={out}", *LONG]) + list(extra):
        args += ["--set", item]
    return args


def start(args: list[str]) -> subprocess.Popen:
    # A session of its own: killpg reaches it as the terminal's Ctrl-C reaches a foreground job.
    return subprocess.Popen(args, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def last_iteration(out: Path) -> int:
    try:
        return max(json.loads(line)["iteration"] for line in (out / "metrics.jsonl").read_text().splitlines())
    except (FileNotFoundError, ValueError):
        return -1


def wait_until(condition, process: subprocess.Popen, seconds: float = HANG_S) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"hung after the signal:\n{out[-2000:]}\n{err[-3000:]}")
    return process.returncode, out, err


def assert_one_clean_checkpoint(out: Path, stdout: str) -> int:
    """One stop line, a loadable last.pt whose iteration ends the metrics, no debris, no lock."""
    stops = [line for line in stdout.splitlines() if line.startswith("interrupted after")]
    assert len(stops) == 1, stdout
    iteration = int(stops[0].split()[2])
    state = load_checkpoint(out / "last.pt")
    assert state["iteration"] == iteration
    metrics = out / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    train_iterations = [r["iteration"] for r in records if r["type"] == "train"]
    assert train_iterations == list(range(1, iteration + 1))  # each once, none beyond the checkpoint
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp files, lock removed
    return iteration


def ctrl_c_when(condition, delay: float) -> threading.Thread:
    """A thread that presses Ctrl-C (SIGINT to this process) ``delay`` s after ``condition()``."""
    def press():
        deadline = time.monotonic() + HANG_S
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=press, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_with_two_processes_stops_both_at_one_step_every_time(tmp_path, capsys):
    """Ten Ctrl-Cs at random moments (during the set-up, mid-epoch, at an evaluation) of one
    `train --procs 2` run, resumed after each: every time both processes stop after the same step,
    one checkpoint is written, exit 130. This test process is the launcher: the terminal's Ctrl-C
    reaches the launcher alone (its training processes have sessions of their own), and a signal
    to this process is that (test_a_second_ctrl_c_quits_at_once sends it to a process group)."""
    out = tmp_path / "run"
    chooser = random.Random(19)
    iteration = 0
    for attempt in range(10):
        if attempt in (0, 5):  # during the set-up: rank 0 has locked the folder, the model and data are built
            press = ctrl_c_when(lambda: (out / ".anchordet.lock").exists(), chooser.uniform(0.0, 1.0))
        else:
            target = iteration + chooser.randint(1, 5)
            press = ctrl_c_when(lambda: last_iteration(out) >= target, 0.0)
        args = command(out, resume=(out / "last.pt").exists())[3:]  # the command line, run in this process
        faulthandler.dump_traceback_later(HANG_S, exit=True, file=sys.__stderr__)  # a hang: stacks, exit
        try:
            code = main(args)
        finally:
            faulthandler.cancel_dump_traceback_later()
        press.join()
        captured = capsys.readouterr()
        assert code == 130, captured.err[-3000:]
        reached = assert_one_clean_checkpoint(out, captured.out)
        assert reached >= iteration
        iteration = reached
    assert iteration > 0


@pytest.mark.parametrize("procs", [1, 2])
def test_sigterm_saves_and_exits_143(tmp_path, procs):
    """What a scheduler sends, to the launcher alone (as `kill PID` does): saved like Ctrl-C."""
    out = tmp_path / "run"
    process = start(command(out, procs=procs))
    wait_until(lambda: last_iteration(out) >= 2, process)
    os.kill(process.pid, signal.SIGTERM)
    code, stdout, stderr = finish(process)
    assert code == 143, stderr[-3000:]
    assert assert_one_clean_checkpoint(out, stdout) >= 2


@pytest.mark.parametrize("procs", [1, 2])
def test_a_second_ctrl_c_quits_at_once(tmp_path, procs):
    """The first Ctrl-C starts a save that takes minutes; the second ends every process at once."""
    script = tmp_path / "slow_stop.py"
    script.write_text(SLOW_STOP_SCRIPT)
    out = tmp_path / "run"
    process = start(command(out, procs=procs, script=script))
    wait_until(lambda: last_iteration(out) >= 2, process)
    os.killpg(process.pid, signal.SIGINT)
    stderr_lines = []
    wait_until(lambda: stderr_lines.append(process.stderr.readline()) or "saving slowly" in stderr_lines[-1], process)
    time.sleep(1.2)  # past interrupt.REPEAT_WINDOW_S: a new request, not the first delivered twice
    os.killpg(process.pid, signal.SIGINT)
    started = time.monotonic()
    code, _, stderr = finish(process)
    assert code == 130 and "again" in stderr, stderr[-3000:]
    assert time.monotonic() - started < HANG_S / 2
    folder = RunFolder(out, resume=out / "last.pt")
    folder.claim()  # every process is gone: none holds the lock any more
    folder.release()


def test_ctrl_c_during_the_evaluation_is_evaluated_on_resume(tmp_path, monkeypatch):
    """A stop request while epoch 1 is evaluated: the resumed run evaluates epoch 1 (record, best.pt),
    then goes on exactly as an uninterrupted run."""
    from anchordet.detectors.retinanet import RetinaNet

    common = [*TINY, "data.digits.num_val=8", "solver.epochs=2", "run.eval_every=1"]  # 2 evaluation batches

    def train(out: Path, *extra: str, resume: bool = False) -> int:
        args = ["train", "--no-progress"] + (["--resume", str(out / "last.pt")] if resume else
                                             ["--config", "retinanet_digits"])
        for item in ([] if resume else common + [f"run.out_dir={out}"]) + list(extra):
            args += ["--set", item]
        return main(args)

    assert train(tmp_path / "straight") == 0
    original, calls = RetinaNet.predict, []

    def ctrl_c_during_first_evaluation(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args, **kwargs)

    out = tmp_path / "interrupted"
    monkeypatch.setattr(RetinaNet, "predict", ctrl_c_during_first_evaluation)
    assert train(out) == 130
    state = load_checkpoint(out / "last.pt")
    assert (state["epoch"], state["iteration"], state["iteration_in_epoch"]) == (0, 4, 4)  # trained, not counted
    assert not (out / "best.pt").exists()
    monkeypatch.setattr(RetinaNet, "predict", original)
    assert train(out, resume=True) == 0
    records = {name: [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
               for name in ("straight", "interrupted")}
    evals = {name: [(r["epoch"], r["iteration"], r["AP"]) for r in rs if r["type"] == "eval"] for name, rs in records.items()}
    assert evals["interrupted"] == evals["straight"] and [e[:2] for e in evals["straight"]] == [(1, 4), (2, 8)]
    assert (out / "best.pt").is_file() and (out / "best.safetensors").is_file()
    expected, got = (load_checkpoint(tmp_path / name / "last.pt")["model"] for name in ("straight", "interrupted"))
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_a_request_is_a_flag_and_a_repeat_within_the_window_is_the_same_request():
    from anchordet.engine import interrupt

    previous = signal.getsignal(signal.SIGINT)
    with interrupt.stop_requests():
        assert interrupt.requested() == 0
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # within REPEAT_WINDOW_S: the same request, no exit
        assert interrupt.requested() == signal.SIGTERM
        with interrupt.stop_requests():  # nested (a launcher's child): the request stays
            assert interrupt.requested() == signal.SIGTERM
    assert signal.getsignal(signal.SIGINT) is previous
    assert (interrupt.exit_status(signal.SIGINT), interrupt.exit_status(signal.SIGTERM)) == (130, 143)
