import os
import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn

from anchordet.config.presets import PRESETS
from anchordet.config.schema import apply_overrides
from anchordet import weights_file
from anchordet.engine import checkpoint as ckpt


def _state(tmp_path, tag: float):
    model = nn.Linear(2, 2)
    nn.init.constant_(model.weight, tag)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    return dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=None, epoch=1, iteration=7,
                iteration_in_epoch=3, config=PRESETS["retinanet_digits"])


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "last.pt", **_state(tmp_path, 1.5))
    state = ckpt.load_checkpoint(path)
    assert torch.equal(state["model"]["weight"], torch.full((2, 2), 1.5))
    assert (state["epoch"], state["iteration"], state["iteration_in_epoch"]) == (1, 7, 3)
    assert state["config"] == PRESETS["retinanet_digits"].to_dict()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_crash_while_writing_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = ckpt.save_checkpoint(tmp_path / "last.pt", **_state(tmp_path, 1.0))

    def crash_halfway(obj, f):
        f.write(b"PK\x03\x04 half a zip file")  # some bytes reach the disk, then the process dies
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, **_state(tmp_path, 2.0))
    monkeypatch.undo()
    assert torch.equal(ckpt.load_checkpoint(path)["model"]["weight"], torch.full((2, 2), 1.0))
    assert os.listdir(tmp_path) == ["last.pt"]  # the temporary file is removed


def test_a_truncated_checkpoint_is_refused_with_the_file_named(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "last.pt", **_state(tmp_path, 1.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="last.pt: refused to load"):
        ckpt.load_checkpoint(path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": _RunsCode()}, path)
    with pytest.raises(ValueError, match="evil.pt: refused to load.*never runs pickled code"):
        ckpt.load_checkpoint(path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(ValueError, match="refused"):
        ckpt.load_checkpoint(plain)


def test_rng_states_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    states = ckpt.rng_states()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.set_rng_states(states)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])


def test_weights_file_rebuilds_the_detector(tmp_path):
    config = apply_overrides(PRESETS["retinanet_digits"], ["model.fpn_channels=16", "model.head_channels=16"])
    torch.manual_seed(0)
    model = config.model.build().eval()
    path = weights_file.save_weights(tmp_path / "model.safetensors", model, config.model, {"note": "x"})
    loaded, read = weights_file.load_detector(path)
    assert read.model_config == config.model and read.checkpoint is None
    images = torch.rand(1, 3, 64, 64)
    assert torch.equal(model(images).cls_logits, loaded(images).cls_logits)


def test_weights_file_without_config_gets_a_clear_message(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "raw.safetensors"))
    with pytest.raises(ValueError, match="raw.safetensors: a state dict without an anchordet model config"):
        weights_file.load_detector(tmp_path / "raw.safetensors")
