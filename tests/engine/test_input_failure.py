"""An image that becomes unreadable in the middle of training (issue 28, item 2): without
skipping, the run stops with one line naming the annotation file, image id and file after
saving last.pt at the step (it lost the epoch before); a run that never finished a step leaves
nothing that blocks a re-run; the resumed run, once the file is fixed, finishes."""
import json
import sys

import pytest
import torch

from anchordet.cli.main import main
from anchordet.data import datasets
from anchordet.engine.checkpoint import load_checkpoint
from anchordet.engine.input_failure import InputFailed, until_input_fails
from anchordet.errors import UserError
from tests.helpers import write_coco_dataset


def train_args(data, out, epochs=3):
    """4 images, batch 2: 2 steps per epoch; evaluation only at the end; no worker processes, so
    the test's patch of the image loader applies."""
    return ["train", "--no-progress", "-c", "retinanet_digits_fast", "--set", f"data.dataset={data}",
            "--set", "model.num_classes=2", "--set", "data.min_size=64", "--set", "data.max_size=64",
            "--set", "solver.batch_size=2", "--set", f"solver.epochs={epochs}", "--set", "model.backbone_width=8",
            "--set", "model.fpn_channels=16", "--set", "model.head_channels=16", "--set", "run.threads=1",
            "--set", "solver.warmup_iters=1", "--set", "data.num_workers=0", "--set", "run.eval_every=0",
            "--set", "data.aspect_ratio_groups=1", "--set", f"run.out_dir={out}"]


def truncate_on_load(monkeypatch, call: int) -> dict:
    """From the ``call``-th image load on, the file being loaded is cut in half first (once): a
    file that became truncated while the run went on. Returns {"path": ..., "bytes": original}."""
    real, seen, cut = datasets.load_image, {"n": 0}, {}

    def load(path, *args, **kwargs):
        seen["n"] += 1
        if seen["n"] >= call and not cut:
            cut["path"], cut["bytes"] = path, path.read_bytes()
            path.write_bytes(cut["bytes"][: len(cut["bytes"]) // 2])
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_image", load)
    return cut


@pytest.fixture
def data(tmp_path):
    return write_coco_dataset(tmp_path / "ds", [(64, 64)] * 4, seed=1)


def test_an_image_truncated_mid_epoch_stops_after_saving_last_pt_at_the_step(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    cut = truncate_on_load(monkeypatch, call=7)  # epoch 2, its second step (4 loads per epoch)
    assert main(train_args(data, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    image_id = int(cut["path"].stem.removeprefix("img"))
    assert err[0].startswith(f"anchordet train: error: {data.parent / 'annotations' / 'instances_train.json'}, "
                             f"image {image_id}: {cut['path']}: cannot decode the image, truncated or corrupt")
    assert f"last.pt saved at iteration 3: fix or remove the file (or set data.skip_bad_annotations=true) and " \
           f"continue with --resume {out / 'last.pt'}" in err[0]
    state = load_checkpoint(out / "last.pt")
    assert (state["epoch"], state["iteration"], state["iteration_in_epoch"]) == (1, 3, 1)  # before: (1, 2, 0)
    monkeypatch.undo()
    cut["path"].write_bytes(cut["bytes"])  # fixed: the run continues where it stopped
    assert main(["train", "--no-progress", "--resume", str(out / "last.pt")]) == 0
    assert load_checkpoint(out / "last.pt")["iteration"] == 6 and (out / "model.safetensors").is_file()
    logged = [json.loads(line)["iteration"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged == sorted(logged)


def test_with_skipping_the_image_is_skipped_and_counted(data, tmp_path, monkeypatch, capsys):
    truncate_on_load(monkeypatch, call=7)
    assert main(train_args(data, tmp_path / "run") + ["--set", "data.skip_bad_annotations=true"]) == 0
    skipped = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert skipped and all(line.startswith("anchordet train: skipped: ") for line in skipped)
    assert "cannot decode the image" in skipped[0] and "(unreadable images skipped so far: 1)" in skipped[0]


def test_a_run_that_fails_before_its_first_step_leaves_nothing_that_blocks_a_rerun(data, tmp_path, monkeypatch,
                                                                                      capsys):
    out = tmp_path / "run"
    cut = truncate_on_load(monkeypatch, call=1)
    assert main(train_args(data, out, epochs=1)) == 2
    err = capsys.readouterr().err
    assert "cannot decode the image" in err and "no step had been trained, nothing was written" in err
    assert not out.exists() or not any(out.iterdir())
    monkeypatch.undo()
    cut["path"].write_bytes(cut["bytes"])
    assert main(train_args(data, out, epochs=1)) == 0  # not refused as "already holds a training run"


def test_an_error_from_a_loader_worker_keeps_only_its_own_message():
    """torch re-raises a worker's exception with the worker's traceback as its text."""
    from torch.utils.data._utils import ExceptionWrapper

    def batches():
        yield "batch 0"
        try:
            raise datasets.ImageReadError("ann.json, image 7: x.png: cannot decode the image, truncated or corrupt "
                                          "(image file is truncated)")
        except UserError:
            ExceptionWrapper(exc_info=sys.exc_info(), where="in DataLoader worker process 0").reraise()

    assert list(until_input_fails(batches())) == [
        "batch 0", InputFailed("ann.json, image 7: x.png: cannot decode the image, truncated or corrupt "
                               "(image file is truncated)")]
