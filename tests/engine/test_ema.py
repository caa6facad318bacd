"""EMA of the weights: the update by hand, and through the trainer (evaluation and weights files
use the average, checkpoints carry it, resume is bit-exact)."""
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from anchordet.config.load import load_config
from anchordet.config.schema import ConfigError
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.weights_file import load_detector
from anchordet.engine.ema import ModelEMA
from anchordet.cli.main import main
from tests.engine.test_trainer import train


def test_update_by_hand():
    model = nn.BatchNorm1d(2)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.num_batches_tracked.fill_(7)
    ema.update(model)  # decay min(0.5, 1/10) = 0.1: 0.1 * 0 + 0.9 * 1
    assert ema.module.weight.tolist() == pytest.approx([0.9, 0.9])
    assert int(ema.module.num_batches_tracked) == 7  # integers are copied, not averaged
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)  # decay min(0.5, 2/11) = 2/11
    assert ema.module.weight.tolist() == pytest.approx([0.9 * 2 / 11 + 3 * 9 / 11] * 2)
    for _ in range(20):
        ema.update(model)
    assert ema.current_decay() == 0.5  # the ramp has reached the decay
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    again = ModelEMA(model, decay=0.5)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 22 and torch.equal(again.module.weight, ema.module.weight)


@pytest.mark.parametrize("value", ["1.0", "-0.1", "1.5"])
def test_decay_outside_zero_one_is_one_line(value):
    with pytest.raises(ConfigError, match=rf"solver.ema_decay: must be in \(0, 1\).*got {value}"):
        load_config("retinanet_digits", [f"solver.ema_decay={value}"])


def test_trainer_evaluates_and_writes_the_average(tmp_path, monkeypatch):
    from anchordet.engine import validation as validation_module

    evaluated = []
    original = validation_module.evaluate_dataset

    def recording(model, *args, **kwargs):
        evaluated.append(model)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(validation_module, "evaluate_dataset", recording)
    assert train(tmp_path, "solver.epochs=2", "run.eval_every=1", "solver.ema_decay=0.8") == 0
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["ema"]["updates"] == 8  # one per optimizer step
    assert len(evaluated) == 2 and all(not m.training and not any(p.requires_grad for p in m.parameters())
                                       for m in evaluated)  # the EMA module, not the trained one
    weights = load_file(str(tmp_path / "model.safetensors"))
    average, raw = state["ema"]["module"], state["model"]
    assert all(torch.equal(weights[k], average[k]) for k in average)
    assert any(not torch.equal(average[k], raw[k]) for k in raw if raw[k].is_floating_point())
    model, _ = load_detector(tmp_path / "last.pt")  # a checkpoint predicts with its average too
    assert all(torch.equal(v, average[k]) for k, v in model.state_dict().items())


def test_resume_with_ema_is_exact(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    common = ["solver.epochs=2", "run.eval_every=0", "solver.ema_decay=0.9"]
    assert train(straight, *common) == 0
    assert train(interrupted, *common, "run.stop_after_iters=3") == 0
    assert main(["train", "--no-progress", "--resume", str(interrupted / "last.pt"),
                 "--set", "run.stop_after_iters=0"]) == 0
    expected, resumed = load_checkpoint(straight / "last.pt"), load_checkpoint(interrupted / "last.pt")
    assert expected["ema"]["updates"] == resumed["ema"]["updates"] == 8
    for key, value in expected["ema"]["module"].items():
        assert torch.equal(value, resumed["ema"]["module"][key]), key
    for key, value in expected["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
