"""Weights files as users handle them (issue 28 notes): identical weights and settings give
identical bytes, and a file that would run code is refused without torch's advice to load it
with ``weights_only=False``."""
import hashlib
import json
import os

import pytest
import torch

from anchordet.backbones.weights import load_state_dict_file
from anchordet.config.schema import ModelConfig
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.engine.init_weights import read_source
from anchordet.weights_file import canonical_safetensors, read_model_config, read_weights, save_weights
from anchordet.errors import UserError
from tests.helpers import TINY_RETINANET


def test_model_safetensors_bytes_are_the_same_for_the_same_weights_and_settings(tmp_path):
    """safetensors keeps its metadata in a Rust HashMap: before, the header's key order changed
    from one save to the next (two metadata keys: about half the saves differed)."""
    torch.manual_seed(0)
    config = ModelConfig("retinanet_resnet_fpn", TINY_RETINANET)
    model = config.build()
    reordered = ModelConfig("retinanet_resnet_fpn", dict(reversed(list(TINY_RETINANET.items()))))
    inference = {"anchordet_inference": json.dumps({"eval_transform": "fixed", "fixed_size": 64})}
    digests = set()
    for i in range(12):
        path = save_weights(tmp_path / f"w{i}.safetensors", model, config if i % 2 else reordered, inference)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    assert read_model_config(tmp_path / "w0.safetensors") == config
    loaded = load_state_dict_file(tmp_path / "w0.safetensors")
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_canonical_header_keeps_the_data_and_pads_to_8_bytes():
    from safetensors.torch import load, save

    tensors = {"b": torch.arange(3.0), "a": torch.ones(2, 2, dtype=torch.float16)}
    data = save(tensors, metadata={"z": "1", "y": "é"})
    canonical = canonical_safetensors(data)
    length = int.from_bytes(canonical[:8], "little")
    assert length % 8 == 0 and canonical[8 + length:] == data[8 + int.from_bytes(data[:8], "little"):]
    assert list(json.loads(canonical[8:8 + length])) == ["__metadata__", "a", "b"]
    assert all(torch.equal(load(canonical)[k], v) for k, v in tensors.items())


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("reader", [load_checkpoint, load_state_dict_file, read_source, read_weights])
def test_the_pickle_refusal_does_not_pass_on_torchs_advice(tmp_path, reader):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": _RunsCode()}, path)
    with pytest.raises(UserError) as info:
        reader(path)
    message = str(info.value)
    assert "\n" not in message and "weights_only" not in message and "likely succeed" not in message
    assert "never runs pickled code" in message or "not a plain weights file" in message
    assert "UnpicklingError: Trying to load unsupported GLOBAL posix.system" in message
    damaged = tmp_path / "cut.pt"
    damaged.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="PytorchStreamReader failed reading zip archive: failed finding central "
                                        r"directory\)$"):
        reader(damaged)
