"""The run folder through `anchordet train`: another run's folder is refused (or replaced with
--overwrite), a folder in use is refused, nothing is written before the run starts, and a resumed
run leaves no debris (stale temporary files, metrics repeated since the checkpoint)."""
import json
import shutil

from anchordet.cli.main import main
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.engine.run_folder import LOCK_NAME, RunFolder
from tests.engine.test_trainer import TINY


def train(out, *extra, flags=(), resume=None) -> int:
    args = ["train", "--no-progress", *flags] + (["--resume", str(resume)] if resume else ["--config", "retinanet_digits"])
    for item in ([] if resume else TINY + [f"run.out_dir={out}"]) + list(extra):
        args += ["--set", item]
    return main(args)


def records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_a_new_run_into_another_runs_folder_is_refused_and_changes_nothing(tmp_path, capsys):
    assert train(tmp_path, "solver.epochs=1") == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert train(tmp_path, "solver.epochs=2") == 2
    line = one_error_line(capsys)
    assert f"{tmp_path} already holds a training run" in line
    assert f"--resume {tmp_path / 'last.pt'}" in line and "run.out_dir" in line and "--overwrite" in line
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_overwrite_replaces_the_previous_run_without_mixing_logs(tmp_path):
    assert train(tmp_path, "solver.epochs=2", "run.eval_every=1") == 0
    assert (tmp_path / "best.pt").is_file()
    assert train(tmp_path, "solver.epochs=1", "run.eval_every=0", flags=["--overwrite"]) == 0
    assert [r["iteration"] for r in records(tmp_path) if r["type"] == "train"] == [1, 2, 3, 4]
    assert [r["epoch"] for r in records(tmp_path) if r["type"] == "eval"] == [1]  # the last epoch's only
    assert len(list((tmp_path / "tensorboard").iterdir())) == 1
    for name in ("last.pt", "best.pt"):  # the new run's best, not the old run's
        assert load_checkpoint(tmp_path / name)["config"]["solver"]["epochs"] == 1


def test_resuming_in_place_is_allowed_and_into_another_run_is_refused(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert train(first, "solver.epochs=2", "run.stop_after_iters=2") == 0
    assert train(second, "solver.epochs=1") == 0
    assert train(None, f"run.out_dir={second}", resume=first / "last.pt") == 2
    assert f"{second} already holds a training run" in one_error_line(capsys)
    assert train(None, "run.stop_after_iters=0", resume=first / "last.pt") == 0
    assert load_checkpoint(first / "last.pt")["iteration"] == 8


def test_a_folder_in_use_is_refused_in_one_line(tmp_path, capsys):
    holder = RunFolder(tmp_path / "run")
    holder.claim()  # as a run going on in another process would (flock is per open file)
    try:
        assert train(tmp_path / "run", "solver.epochs=1") == 2
        line = one_error_line(capsys)
        assert f"{tmp_path / 'run'} is in use by another training run" in line and "run.out_dir" in line
        assert [p.name for p in (tmp_path / "run").iterdir()] == [LOCK_NAME]  # nothing written
    finally:
        holder.release()
    assert not (tmp_path / "run").exists()  # the holder created it and wrote nothing: gone


def missing_annotations(folder):
    """A dataset YAML whose annotation file is missing: the trainer fails while building its data."""
    folder.mkdir()
    (folder / "data.yaml").write_text("format: coco\nnames: [a]\ntrain: {images: ., annotations: gone.json}\n"
                                      "val: {images: ., annotations: gone.json}\n")
    return [f"data.dataset={folder / 'data.yaml'}", "model.num_classes=1"]


def test_a_run_that_fails_before_it_starts_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "solver.epochs=1", *missing_annotations(tmp_path / "data")) == 2
    assert "gone.json" in one_error_line(capsys)
    assert not out.exists()


def test_a_failed_start_leaves_the_previous_run_alone_even_with_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "solver.epochs=1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert train(out, "solver.epochs=1", *missing_annotations(tmp_path / "data"), flags=["--overwrite"]) == 2
    one_error_line(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_resume_removes_stale_temporary_files_of_our_own_names_only(tmp_path):
    assert train(tmp_path, "solver.epochs=2", "run.stop_after_iters=2") == 0
    ours = [tmp_path / ".last.pt.k3j9x0ab.tmp", tmp_path / ".model.safetensors.q1w2e3r4.tmp",
            tmp_path / ".metrics.jsonl.zz99aa00.tmp"]  # as files.atomic_write names them, left by a kill
    theirs = [tmp_path / ".notes.txt.k3j9x0ab.tmp", tmp_path / "last.pt.tmp"]
    for path in ours + theirs:
        path.write_bytes(b"partial")
    assert train(None, "run.stop_after_iters=1", resume=tmp_path / "last.pt") == 0
    assert not [p for p in ours if p.exists()]
    assert all(p.exists() for p in theirs)


def test_resume_after_a_kill_does_not_repeat_the_metrics_since_the_checkpoint(tmp_path):
    """kill -9 after iteration 8 with the checkpoint of iteration 6: records 7 and 8 (and a line
    cut short by the kill) are in metrics.jsonl but not in the checkpoint. The resumed run logs
    them again: each must appear once."""
    assert train(tmp_path, "solver.epochs=2", "run.eval_every=1", "run.stop_after_iters=6") == 0
    shutil.copy(tmp_path / "last.pt", tmp_path / "at_6.pt")
    assert train(None, "run.stop_after_iters=0", resume=tmp_path / "last.pt") == 0
    assert [r["iteration"] for r in records(tmp_path) if r["type"] == "train"] == list(range(1, 9))
    shutil.copy(tmp_path / "at_6.pt", tmp_path / "last.pt")  # what a kill -9 before the end of epoch 2 leaves
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"type": "train", "iteration": 9, "lo')
    assert train(None, resume=tmp_path / "last.pt") == 0
    got = records(tmp_path)
    assert [r["iteration"] for r in got if r["type"] == "train"] == list(range(1, 9))
    assert [(r["epoch"], r["iteration"]) for r in got if r["type"] == "eval"] == [(1, 4), (2, 8)]
