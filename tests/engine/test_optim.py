import math

import pytest
import torch
from torch import nn

from anchordet.config.schema import SolverConfig
from anchordet.engine.optim import build_optimizer, lr_factor, parameter_groups


def test_no_weight_decay_on_norm_layers_and_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.Conv2d(4, 2, 1, bias=False))
    decay, no_decay = parameter_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias),
                                                   id(model[2].weight), id(model[2].bias)}


def test_frozen_parameters_are_not_optimized():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))
    model[0].requires_grad_(False)
    optimizer = build_optimizer(model, SolverConfig())
    optimized = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert optimized == {id(model[1].weight), id(model[1].bias)}


def test_warmup_and_step_schedule_hand_worked():
    solver = SolverConfig(epochs=12, warmup_iters=100, warmup_factor=0.001, schedule="step", steps=(8, 11), gamma=0.1)
    per_epoch = 1000
    assert lr_factor(0, solver, per_epoch) == pytest.approx(0.001)
    assert lr_factor(50, solver, per_epoch) == pytest.approx(0.001 * 0.5 + 0.5)
    assert lr_factor(100, solver, per_epoch) == 1.0
    assert lr_factor(7999, solver, per_epoch) == 1.0
    assert lr_factor(8000, solver, per_epoch) == pytest.approx(0.1)
    assert lr_factor(11000, solver, per_epoch) == pytest.approx(0.01)


def test_cosine_schedule_hand_worked():
    solver = SolverConfig(epochs=4, warmup_iters=0, schedule="cosine")
    assert lr_factor(0, solver, 10) == 1.0
    assert lr_factor(20, solver, 10) == pytest.approx(0.5)
    assert lr_factor(10, solver, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(40, solver, 10) == pytest.approx(0.0)


def test_scheduler_drives_the_optimizer_learning_rate():
    from anchordet.engine.optim import build_scheduler

    solver = SolverConfig(epochs=2, batch_size=8, base_lr=0.1, base_batch_size=16, warmup_iters=2,
                          warmup_factor=0.5, schedule="step", steps=(1,))
    model = nn.Linear(2, 2)
    optimizer = build_optimizer(model, solver)
    scheduler = build_scheduler(optimizer, solver, iters_per_epoch=3)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    base = 0.1 * 8 / 16  # linear scaling rule
    assert seen == pytest.approx([base * 0.5, base * 0.75, base, base * 0.1, base * 0.1, base * 0.1])


def test_adamw_option_keeps_the_decay_groups():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    optimizer = build_optimizer(model, SolverConfig(optimizer="adamw", momentum=0.8, weight_decay=0.05))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.999)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]
