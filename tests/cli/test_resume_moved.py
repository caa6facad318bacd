"""`train --resume` writes beside the checkpoint it resumes (issue 28, item 4): after `mv runs/a
runs/b` it recreated runs/a (the out_dir stored in the checkpoint, relative to the current
folder) and wrote there, splitting the metrics over two folders."""
import json

from anchordet.cli.main import main
from anchordet.engine.checkpoint import load_checkpoint
from tests.engine.test_input_failure import train_args
from tests.helpers import write_coco_dataset


def test_a_moved_run_resumed_from_another_folder_writes_beside_its_checkpoint(tmp_path, monkeypatch, capsys):
    data = write_coco_dataset(tmp_path / "ds", [(64, 64)] * 4, seed=1)
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(project)
    assert main(train_args(data, "runs/a", epochs=1)) == 0
    (project / "runs" / "a").rename(project / "runs" / "b")
    capsys.readouterr()
    monkeypatch.chdir(elsewhere)
    moved = project / "runs" / "b"
    assert main(["train", "--no-progress", "--resume", str(moved / "last.pt"), "--set", "solver.epochs=2"]) == 0
    err = capsys.readouterr().err
    assert (f"anchordet train: resuming {moved / 'last.pt'} in {moved}, the checkpoint's folder (it was written "
            f"to runs/a)") in err
    assert not (project / "runs" / "a").exists() and not (elsewhere / "runs").exists()
    assert load_checkpoint(moved / "last.pt")["iteration"] == 4
    iterations = [json.loads(line)["iteration"] for line in (moved / "metrics.jsonl").read_text().splitlines()]
    assert iterations[0] == 1 and iterations[-1] == 4  # one folder holds the whole run


def test_run_out_dir_still_chooses_and_resuming_in_place_says_nothing(tmp_path, monkeypatch, capsys):
    data = write_coco_dataset(tmp_path / "ds", [(64, 64)] * 4, seed=1)
    monkeypatch.chdir(tmp_path)
    assert main(train_args(data, "runs/a", epochs=1)) == 0
    capsys.readouterr()
    assert main(["train", "--no-progress", "--resume", "runs/a/last.pt", "--set", "solver.epochs=2",
                 "--set", "run.out_dir=runs/c"]) == 0
    assert "resuming" not in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "runs" / "c" / "last.pt")["iteration"] == 4
    assert main(["train", "--no-progress", "--resume", "runs/c/last.pt", "--set", "solver.epochs=3"]) == 0
    assert "resuming" not in capsys.readouterr().err
