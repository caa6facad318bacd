"""Gradient accumulation: N batches of B then one SGD step equal one step on a batch of N * B; the
learning rate follows the effective batch; the schedule counts optimizer steps; resume is exact."""
import json

import pytest
import torch

from anchordet.cli.main import main
from anchordet.config.load import load_config
from anchordet.config.schema import ConfigError
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.engine.optim import lr_factor
from tests.engine.test_trainer import TINY, train
from tests.helpers import write_coco_dataset

# Plain SGD, frozen BN (no batch statistics), no flips. Every image has the same two boxes at the
# same place and the same size, so each has the same number of positive anchors and RetinaNet's
# per-batch normalizer of a batch of 4 is half that of a batch of 8.
# fp32: the sums of accumulated gradients equal one big batch's to float rounding; in bf16 (the
# digits presets' "auto" on CPUs that have it) each batch shape rounds its own way.
SGD = ["solver.optimizer=sgd", "solver.momentum=0.0", "solver.weight_decay=0.0", "model.frozen_bn=true",
       "solver.clip_grad_norm=0.0", "solver.warmup_iters=0", "data.hflip=false", "run.eval_every=0",
       "solver.base_lr=0.01", "solver.base_batch_size=8", "model.num_classes=2", "run.precision=fp32"]


@pytest.fixture(scope="module")
def same_boxes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("same_boxes")
    return write_coco_dataset(folder, [(64, 64)] * 16, boxes=[(0.1, 0.2, 0.45, 0.7), (0.5, 0.3, 0.9, 0.6)])


def test_two_batches_of_four_take_the_step_of_one_batch_of_eight(tmp_path, same_boxes):
    one_step = [*SGD, f"data.dataset={same_boxes}", "solver.epochs=1", "run.stop_after_iters=1"]
    assert train(tmp_path / "big", *one_step, "solver.batch_size=8") == 0
    assert train(tmp_path / "accumulated", *one_step, "solver.batch_size=4", "solver.accumulate_steps=2") == 0
    assert train(tmp_path / "small", *one_step, "solver.batch_size=4") == 0
    big = load_checkpoint(tmp_path / "big" / "last.pt")
    accumulated = load_checkpoint(tmp_path / "accumulated" / "last.pt")
    initial = load_checkpoint(tmp_path / "small" / "last.pt")  # one step on the first 4 images only
    assert big["iteration"] == accumulated["iteration"] == 1
    moved = 0
    for key, value in big["model"].items():
        torch.testing.assert_close(accumulated["model"][key], value, rtol=1e-5, atol=1e-7, msg=key)
        moved += not torch.allclose(initial["model"][key], value, rtol=1e-5, atol=1e-7)
    assert moved > 10  # the comparison can fail: a step on half the batch lands elsewhere


def test_learning_rate_and_schedule_count_optimizer_steps(tmp_path, same_boxes):
    assert train(tmp_path, *SGD, f"data.dataset={same_boxes}", "solver.batch_size=4", "solver.accumulate_steps=2",
                 "solver.schedule=cosine", "solver.epochs=2") == 0
    config = load_config("retinanet_digits", TINY + SGD + ["solver.batch_size=4", "solver.accumulate_steps=2",
                                                           "solver.schedule=cosine", "solver.epochs=2"])
    assert config.solver.effective_batch_size == 8 and config.solver.lr == pytest.approx(0.01)  # 0.01 * 8 / 8
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["type"] == "train"]
    assert [r["iteration"] for r in train_records] == [1, 2, 3, 4]  # 16 images / 8 per step, 2 epochs
    assert [r["lr"] for r in train_records] == pytest.approx(
        [0.01 * lr_factor(i, config.solver, iters_per_epoch=2) for i in range(1, 5)])
    assert train_records[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # the cosine ends with the 4th step
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 4


def test_resume_mid_epoch_with_accumulation_is_exact(tmp_path, same_boxes):
    common = [f"data.dataset={same_boxes}", "model.num_classes=2", "solver.batch_size=2", "solver.accumulate_steps=2",
              "solver.epochs=2", "run.eval_every=0", "data.hflip=true"]
    assert train(tmp_path / "straight", *common) == 0
    assert train(tmp_path / "interrupted", *common, "run.stop_after_iters=3") == 0  # 4 steps per epoch
    state = load_checkpoint(tmp_path / "interrupted" / "last.pt")
    assert (state["epoch"], state["iteration_in_epoch"]) == (0, 3)
    assert main(["train", "--no-progress", "--resume", str(tmp_path / "interrupted" / "last.pt"),
                 "--set", "run.stop_after_iters=0"]) == 0
    expected = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    resumed = load_checkpoint(tmp_path / "interrupted" / "last.pt")["model"]
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key


def test_accumulate_steps_below_one_is_one_line():
    with pytest.raises(ConfigError, match=r"solver.accumulate_steps: must be >= 1 \(1: no accumulation\), got 0"):
        load_config("retinanet_digits", ["solver.accumulate_steps=0"])
