"""DDP equality per detector family: two CPU processes (gloo), each on half of a batch, end with
the gradients of one process on the whole batch. It holds because every loss normaliser (the
positive anchors of RetinaNet and SSD, the sampled anchors and RoIs of Faster R-CNN) is the mean
count over the processes: DDP averages the gradients, so sum_p grad(L_p) / (W * mean n) =
grad(sum_p L_p) / sum_p n. With each process's own count the halves here (5 objects vs 1) differ."""
import pytest
import torch

from anchordet.engine.launch import run_processes
from ddp_helpers import FAMILIES, ddp_differences


@pytest.fixture(scope="module")
def two_processes():
    torch.set_num_threads(1)
    return run_processes(ddp_differences, 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_two_processes_give_the_gradients_of_one(family, two_processes):
    worst, error, compared = two_processes[family]
    assert compared > 10, "DDP and one process train different parameters"
    assert error < 1e-4, f"{worst}: max |DDP - one process| is {error:.2g} of its largest gradient"
