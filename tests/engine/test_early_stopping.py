"""Early stopping (run.patience) through the trainer, on a scripted sequence of evaluation scores."""
import json

import pytest

from anchordet.cli.main import main
from anchordet.config.load import load_config
from anchordet.config.schema import ConfigError
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.engine.early_stopping import EarlyStopping
from tests.engine.test_trainer import train

# AP after each epoch: best after epoch 2, then three evaluations below it
SCORES = {1: 0.10, 2: 0.30, 3: 0.20, 4: 0.25, 5: 0.29, 6: 0.50, 7: 0.60, 8: 0.70}


class ScriptedResult:
    def __init__(self, headline):
        self.headline, self.results = headline, []

    def scalars(self):
        return {"AP": self.headline}


@pytest.fixture
def scripted_scores(monkeypatch):
    from anchordet.engine import trainer as trainer_module
    from anchordet.engine import validation as validation_module

    def evaluate(model, dataset, metric, device, batch_size, **options):
        return ScriptedResult(SCORES[trainer_module_epoch[0]])

    trainer_module_epoch = [0]
    original = trainer_module.Trainer._evaluate

    def remember_epoch(self, epoch):
        trainer_module_epoch[0] = epoch
        return original(self, epoch)

    monkeypatch.setattr(validation_module, "evaluate_dataset", evaluate)
    monkeypatch.setattr(trainer_module.Trainer, "_evaluate", remember_epoch)


def test_patience_stops_after_n_evaluations_without_a_better_metric(tmp_path, scripted_scores, capsys):
    assert train(tmp_path, "solver.epochs=8", "run.eval_every=1", "run.patience=3") == 0
    out = capsys.readouterr().out
    assert "early stop after epoch 5: no better coco AP in 3 evaluations (best 0.3000 after epoch 2)" in out
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "eval"] == [1, 2, 3, 4, 5]
    (stop,) = [r for r in records if r["type"] == "early_stop"]
    assert stop == {"type": "early_stop", "iteration": 20, "epoch": 5, "patience": 3, "best": 0.3, "best_epoch": 2}
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "best.safetensors").is_file()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 5


def test_a_resumed_run_stops_where_the_uninterrupted_one_does(tmp_path, scripted_scores, capsys):
    assert train(tmp_path, "solver.epochs=8", "run.eval_every=1", "run.patience=3", "run.stop_after_iters=14") == 0
    assert load_checkpoint(tmp_path / "last.pt")["extra"]["early_stopping"] == {"evaluations_since_best": 1,
                                                                               "best_epoch": 2}
    assert main(["train", "--no-progress", "--resume", str(tmp_path / "last.pt"), "--set", "run.stop_after_iters=0"]) == 0
    assert "early stop after epoch 5" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 20
    # resuming a run that stopped early trains no further
    assert main(["train", "--no-progress", "--resume", str(tmp_path / "last.pt")]) == 0
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 20


def test_without_patience_every_epoch_runs(tmp_path, scripted_scores):
    assert train(tmp_path, "solver.epochs=6", "run.eval_every=1") == 0
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 6


def test_counter_by_hand():
    stop = EarlyStopping(patience=2)
    assert [stop.record(improved, epoch) for epoch, improved in enumerate([True, False, True, False, False], 1)] == \
        [False, False, False, False, True]
    assert stop.best_epoch == 3 and EarlyStopping(patience=0).record(False, 1) is False


@pytest.mark.parametrize("overrides, message", [
    (["run.patience=-1"], "run.patience: must be >= 0 (0: no early stopping), got -1"),
    (["run.patience=2", "run.eval_every=0"], "run.patience counts evaluations: set run.eval_every >= 1"),
])
def test_bad_patience_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config("retinanet_digits", overrides)
    assert message in str(error.value)
