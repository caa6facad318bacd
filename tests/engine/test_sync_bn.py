"""SyncBatchNorm on 2 CPU processes (gloo) against plain BatchNorm on the global batch in one process:
the module by itself, and one training step through `anchordet train --procs 2`."""
import pytest
import torch
from torch import nn

from anchordet.cli.main import main
from anchordet.config.load import load_config
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.weights_file import read_model_config
from anchordet.engine.launch import run_processes
from anchordet.engine.sync_bn import SyncBatchNorm2d, convert_sync_batch_norm


def _inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 5, 4, generator=g) * 3 + 1
    weighting = torch.randn(8, 3, 5, 4, generator=g)  # makes the loss depend on every output differently
    gamma, beta = torch.randn(3, generator=g), torch.randn(3, generator=g)
    return x, weighting, gamma, beta


def batch_norm_in_a_process_group(synced: bool) -> list[dict]:
    """Run in each process of a 2-process gloo group (``run_processes``, the launcher of
    ``anchordet train --procs``): this rank's half of the batch through (Sync)BatchNorm, forward
    and backward; returns what every rank got (gathered), so the parent checks both."""
    from anchordet import distributed as D

    D.init_from_environment(torch.device("cpu"))
    rank, world = D.rank(), D.world_size()
    x, weighting, gamma, beta = _inputs()
    share = slice(rank * 8 // world, (rank + 1) * 8 // world)
    bn = (SyncBatchNorm2d if synced else nn.BatchNorm2d)(3, momentum=0.3)
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    local = x[share].clone().requires_grad_(True)
    out = bn(local)
    (out * weighting[share]).sum().backward()
    got = {"out": out.detach(), "x_grad": local.grad, "weight_grad": bn.weight.grad, "bias_grad": bn.bias.grad,
           "running_mean": bn.running_mean, "running_var": bn.running_var}
    # as lists: a tensor sent through the launcher's queue is shared memory of a process that ends
    return D.all_gather_objects({key: value.tolist() for key, value in got.items()})


def _two_processes(synced: bool) -> dict:
    # run_processes, not mp.spawn(join=True): a process that has reported its result and then dies
    # in torch's gloo teardown ("terminate called without an active exception", SIGABRT: 1 full
    # suite run in 4 with mp.spawn and a file:// rendezvous, even after a barrier) does not fail
    # a result that is complete; the trainer's processes are launched the same way.
    parts = [{key: torch.tensor(value) for key, value in part.items()}  # float32 -> float -> float32: exact
             for part in run_processes(batch_norm_in_a_process_group, 2, synced)]
    return {"out": torch.cat([p["out"] for p in parts]), "x_grad": torch.cat([p["x_grad"] for p in parts]),
            # the loss is a sum over processes: parameter gradients add up
            "weight_grad": parts[0]["weight_grad"] + parts[1]["weight_grad"],
            "bias_grad": parts[0]["bias_grad"] + parts[1]["bias_grad"],
            "running_mean": parts[0]["running_mean"], "running_var": parts[0]["running_var"],
            "same_stats_on_both": torch.equal(parts[0]["running_var"], parts[1]["running_var"])}


def _one_process() -> dict:
    x, weighting, gamma, beta = _inputs()
    bn = nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    x.requires_grad_(True)
    out = bn(x)
    (out * weighting).sum().backward()
    return {"out": out.detach(), "x_grad": x.grad, "weight_grad": bn.weight.grad, "bias_grad": bn.bias.grad,
            "running_mean": bn.running_mean, "running_var": bn.running_var}


def test_two_gloo_processes_equal_one_process_on_the_global_batch():
    expected = _one_process()
    synced = _two_processes(synced=True)
    assert synced.pop("same_stats_on_both")
    for key, value in expected.items():
        torch.testing.assert_close(synced[key], value, rtol=1e-5, atol=1e-5, msg=key)
    plain = _two_processes(synced=False)  # per-process statistics: not the same
    assert not torch.allclose(plain["out"], expected["out"], atol=1e-3)
    assert not torch.allclose(plain["running_var"], expected["running_var"], atol=1e-3)


def test_one_process_and_eval_mode_are_plain_batch_norm():
    x = torch.randn(4, 3, 6, 6)
    plain, synced = nn.BatchNorm2d(3), SyncBatchNorm2d(3)
    assert torch.equal(plain(x), synced(x)) and torch.equal(plain.running_var, synced.running_var)
    plain.eval(), synced.eval()
    assert torch.equal(plain(x), synced(x))


def test_convert_keeps_weights_statistics_and_frozen_layers():
    from torchvision.ops import FrozenBatchNorm2d

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4), FrozenBatchNorm2d(4)))
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
        model[2][0].weight.fill_(2.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    convert_sync_batch_norm(model)
    assert type(model[1]) is SyncBatchNorm2d and type(model[2][0]) is SyncBatchNorm2d
    assert type(model[2][1]) is FrozenBatchNorm2d
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_the_option_is_a_model_key_outside_the_factory_arguments(tmp_path):
    config = load_config("retinanet_digits", ["model.sync_batch_norm=true"])
    assert config.model.sync_batch_norm is True and "sync_batch_norm" not in config.model.args
    assert config.to_dict()["model"]["sync_batch_norm"] is True
    assert "sync_batch_norm" not in load_config("retinanet_digits").to_dict()["model"]
    with pytest.raises(ValueError, match="model.sync_batch_norm: expected true or false, got 'yes please'"):
        load_config("retinanet_digits", ["model.sync_batch_norm=yes please"])


def test_procs_2_with_sync_batch_norm_takes_the_step_of_one_process(tmp_path):
    """One SGD step of the tiny RetinaNet with trainable BN: 2 gloo processes of 2 images with
    SyncBN equal 1 process of 4 images (weights and BN statistics), as DDP with frozen BN does."""
    from tests.engine.test_trainer import ONE_SGD_STEP, TINY, train

    trainable_bn = [*ONE_SGD_STEP, "model.frozen_bn=false"]
    assert train(tmp_path / "one", *trainable_bn) == 0
    overrides = []
    for item in TINY + [f"run.out_dir={tmp_path / 'two'}", *trainable_bn, "model.sync_batch_norm=true"]:
        overrides += ["--set", item]
    assert main(["train", "--no-progress", "--procs", "2", "--config", "retinanet_digits", *overrides]) == 0
    one, two = load_checkpoint(tmp_path / "one" / "last.pt")["model"], load_checkpoint(tmp_path / "two" / "last.pt")["model"]
    assert any("running_var" in k for k in one)
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    assert read_model_config(tmp_path / "two" / "last.pt").args == read_model_config(tmp_path / "one" / "last.pt").args
