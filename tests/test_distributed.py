"""The process-group helpers under a real 2-process gloo group (CPU), and the device / backend
choice that makes them work under NCCL (GPUs: tested by benchmarks/gpu_check.sh)."""
import pytest
import torch

from anchordet import distributed as D
from anchordet.engine.launch import run_processes
from helpers import collectives_in_a_process_group


def test_collectives_agree_across_two_gloo_processes():
    per_rank = run_processes(collectives_in_a_process_group, 2)
    assert len(per_rank) == 2
    for got in per_rank:  # both ranks get the same, hand-worked values
        assert got["device"] == "cpu"
        assert got["sums"] == {"a": 1.0 + 2.0, "b": 5.0}
        assert got["any"] == [True, False] and got["all"] == [False, True]
        assert got["min"] == 7 and got["mean"] == 0.5


def test_single_process_is_the_identity():
    assert D.all_reduce_sums({"x": 2.0}) == {"x": 2.0}
    assert D.any_process(True) and not D.any_process(False) and D.all_processes(True)
    assert D.min_over_processes(5) == 5 and D.collective_device() == torch.device("cpu")


@pytest.mark.parametrize("backend, expected", [("gloo", "cpu"), ("nccl", "cuda:1"), ("cpu:gloo,cuda:nccl", "cuda:1")])
def test_collectives_use_the_gpu_when_the_group_has_nccl(monkeypatch, backend, expected):
    monkeypatch.setattr(D, "is_distributed", lambda: True)
    monkeypatch.setattr(D.dist, "get_backend", lambda group=None: backend)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert D.collective_device() == torch.device(expected)


def test_gpu_groups_add_gloo_for_cpu_tensors(monkeypatch):
    assert D.process_group_backend(torch.device("cpu")) == "gloo"
    assert D.process_group_backend(torch.device("cuda", 0)) == "cpu:gloo,cuda:nccl"
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(D.dist, "init_process_group", lambda backend: calls.append(backend))
    D.init_from_environment(torch.device("cuda", 0))
    assert calls == ["cpu:gloo,cuda:nccl"]
