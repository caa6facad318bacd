"""A full disk while a checkpoint is written (issue 28, item 5): one line naming the file, the
earlier checkpoint intact (it was a RuntimeError traceback from torch's zip writer). The disk is
simulated: the file object the atomic writer opens raises ENOSPC past a number of bytes, as
``write(2)`` does on a full file system."""
import errno
import io

import pytest

from anchordet import files
from anchordet.cli.main import main
from anchordet.engine.checkpoint import load_checkpoint
from tests.engine.test_input_failure import train_args
from tests.helpers import write_coco_dataset


class _FullDisk(io.FileIO):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    room = 1000

    def write(self, data):
        if self.tell() + len(memoryview(data).cast("B")) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def fill_disk_for(monkeypatch, name: str, after: int = 0) -> None:
    """Writes of ``name`` (atomic writes: its temporary file) fail with ENOSPC, from its
    ``after + 1``-th write on; other files are written as usual."""
    real_open, count = open, {"n": 0}

    def fake_open(path, mode="r", *args, **kwargs):
        if str(path).rsplit("/", 1)[-1].startswith(f".{name}.") and "w" in mode:
            count["n"] += 1
            if count["n"] > after:
                return _FullDisk(path, "w")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(files, "open", fake_open, raising=False)


def test_torch_save_on_a_full_disk_is_an_os_error_naming_the_target_and_the_old_file_stays(tmp_path, monkeypatch):
    import torch

    target = tmp_path / "last.pt"
    files.atomic_write(target, lambda f: torch.save({"old": torch.zeros(4)}, f))
    fill_disk_for(monkeypatch, "last.pt")
    with pytest.raises(OSError) as info:
        files.atomic_write(target, lambda f: torch.save({"new": torch.zeros(10000)}, f))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(torch.load(target, weights_only=True)) == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_full_disk_while_training_saves_last_pt_is_one_line_and_the_earlier_checkpoint_stays(
        tmp_path, monkeypatch, capsys):
    data = write_coco_dataset(tmp_path / "ds", [(64, 64)] * 4, seed=1)
    out = tmp_path / "run"
    fill_disk_for(monkeypatch, "last.pt", after=1)  # the end of epoch 1 is saved, that of epoch 2 is not
    assert main(train_args(data, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"anchordet train: error: {out / 'last.pt'}: No space left on device"]
    state = load_checkpoint(out / "last.pt")
    assert (state["epoch"], state["iteration"]) == (1, 2)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".last.pt.")]
