"""The local multi-process launcher behind `anchordet train --procs N` and `anchordet demo`."""
import operator
import os

import pytest

from anchordet.engine.launch import ChildProcessFailed, cpu_count, run_processes, threads_per_process


def test_children_get_the_torchrun_environment_and_rank_0_answers():
    # os.getenv pickles by name, so each spawned child reads its own environment
    assert run_processes(os.getenv, 2, "WORLD_SIZE") == "2"
    assert run_processes(os.getenv, 2, "RANK") == "0"  # the result is rank 0's
    assert run_processes(operator.add, 1, 2, 3) == 5


def test_a_failing_child_raises_with_its_traceback():
    with pytest.raises(ChildProcessFailed, match=r"(?s)process 0: ZeroDivisionError.*Traceback"):
        run_processes(operator.truediv, 2, 1, 0)
    with pytest.raises(ValueError, match="processes must be >= 1"):
        run_processes(operator.add, 0, 1, 2)


def test_threads_are_shared_out():
    assert threads_per_process(1) == cpu_count()
    assert threads_per_process(cpu_count() * 2) == 1
