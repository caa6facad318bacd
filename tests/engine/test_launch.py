"""The local multi-process launcher behind `anchordet train --procs N` and `anchordet demo`."""
import json
import operator
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from anchordet.cli.main import main
from anchordet.devices import cpu_count
from anchordet.engine.launch import ChildProcessFailed, run_processes, threads_per_process


def test_children_get_the_torchrun_environment_and_rank_0_answers():
    # os.getenv pickles by name, so each spawned child reads its own environment
    assert run_processes(os.getenv, 2, "WORLD_SIZE") == "2"
    assert run_processes(os.getenv, 2, "RANK") == "0"  # the result is rank 0's
    assert run_processes(operator.add, 1, 2, 3) == 5


def test_a_failing_child_raises_with_its_traceback():
    with pytest.raises(ChildProcessFailed, match=r"(?s)^process [01]: ZeroDivisionError.*Traceback"):  # the first to fail
        run_processes(operator.truediv, 2, 1, 0)
    with pytest.raises(ValueError, match="processes must be >= 1"):
        run_processes(operator.add, 0, 1, 2)


# Returns 7, then the process's teardown fails: a Python error, or the process aborts (SIGABRT),
# as a gloo thread of torch's did in the sync-BN test.
FAILING_TEARDOWN = ("(setattr(__import__('anchordet.distributed', fromlist=['cleanup']), 'cleanup', {}), 7)[1]")


@pytest.mark.parametrize("teardown", ["lambda: 1 / 0", "__import__('os').abort"])
def test_a_complete_result_survives_a_failing_teardown(teardown):
    assert run_processes(eval, 2, FAILING_TEARDOWN.format(teardown)) == 7


def test_a_process_hanging_after_its_report_is_killed_after_the_grace_period(monkeypatch, capfd):
    from anchordet.engine import launch

    monkeypatch.setattr(launch, "TEARDOWN_GRACE_S", 1.0)
    started = time.monotonic()
    assert run_processes(eval, 2, FAILING_TEARDOWN.format("lambda: __import__('time').sleep(3600)")) == 7
    assert time.monotonic() - started < 120  # without the grace period: an hour
    assert "training processes [0, 1] did not exit 1 s after their report: killed" in capfd.readouterr().err


def test_threads_are_shared_out():
    assert threads_per_process(1) == cpu_count()
    assert threads_per_process(cpu_count() * 2) == 1


# Rank 1 fails at once; rank 0 waits for ever, as a process does in a collective with a dead peer.
FAIL_ON_RANK_1 = ("__import__('threading').Event().wait() if __import__('os').environ['RANK'] == '0' "
                  "else 1 / 0")
FIRST_FAILURE_SCRIPT = f"""
from anchordet.engine.launch import ChildProcessFailed, run_processes
if __name__ == "__main__":
    try:
        run_processes(eval, 2, {FAIL_ON_RANK_1!r})
    except ChildProcessFailed as failure:
        print(type(failure.exception).__name__)
        print(failure)
"""


def test_the_first_failure_is_reported_and_the_waiting_process_is_killed(tmp_path):
    script = tmp_path / "first_failure.py"
    script.write_text(FIRST_FAILURE_SCRIPT)
    try:  # in a process of its own: without the fix it waits for ever
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("run_processes kept waiting for the process that waits for the failed one")
    exception_type, message = done.stdout.split("\n", 1)
    assert exception_type == "ZeroDivisionError"
    assert message.startswith("process 1: ZeroDivisionError: division by zero") and "process 0" not in message


def test_an_input_error_in_a_child_is_one_line_as_with_one_process(tmp_path, capfd):
    """A corrupt image met by one of two processes: the user sees its one-line message, exit 2 (not
    3-4 tracebacks ending in gloo's "Connection closed by peer")."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(8):
        pixels = np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{i}.jpg")
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 64})
        annotations.append({"id": 100 + i, "image_id": i, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400,
                            "iscrowd": 0})
    corrupt = root / "images" / "5.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:300])
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                               "categories": [{"id": 1, "name": "a"}]}))
    (root / "data.yaml").write_text("format: coco\ntrain: {images: images, annotations: ann.json}\n"
                                    "val: {images: images, annotations: ann.json}\n")
    overrides = []
    for item in ["model.backbone_width=8", "model.fpn_channels=16", "model.head_channels=16", "model.head_num_convs=1",
                 "model.num_classes=1", f"data.dataset={root / 'data.yaml'}", "data.min_size=64", "data.max_size=64",
                 "data.num_workers=0", "solver.batch_size=4", "solver.epochs=1", "run.threads=1",
                 f"run.out_dir={tmp_path / 'run'}"]:
        overrides += ["--set", item]
    assert main(["train", "--no-progress", "--procs", "2", "--config", "retinanet_digits", *overrides]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    # the line names the annotation file and image id too (issue 28, item 2), and every process stopped together
    assert len(err) == 1 and err[0].startswith(f"anchordet train: error: {root / 'ann.json'}, image 5: {corrupt}: "), err
