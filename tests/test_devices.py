import pytest
import torch

from anchordet.devices import resolve_device
from anchordet.errors import UserError


def test_auto_is_cpu_without_cuda_and_names_are_torch_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_cuda_is_a_user_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="'cuda:1'.*CUDA is not available"):
        resolve_device("cuda:1")
