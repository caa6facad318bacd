"""anchordet.files: atomic writes keep the old file on any failure, name the target in OS errors,
and give the file the permissions an ordinary open() would."""
import errno
import os
import stat
from pathlib import Path

import pytest

from anchordet import files
from anchordet.files import atomic_path, atomic_write, atomic_write_json, atomic_write_text


@pytest.fixture
def umask():
    """Set a umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_umask_permissions_not_mkstemp_0600(tmp_path, umask, mask, expected):
    umask(mask)
    assert files.current_umask() == mask
    path = atomic_write_text(tmp_path / "a.json", "{}")
    assert _mode(path) == expected
    with atomic_path(tmp_path / "b.onnx") as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "b.onnx") == expected
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what an ordinary open() gives: the same
    assert _mode(plain) == expected


def test_a_replaced_file_keeps_its_permissions(tmp_path, umask):
    umask(0o022)
    path = atomic_write_text(tmp_path / "a.txt", "old")
    os.chmod(path, 0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o640


def test_a_full_disk_leaves_the_previous_file_and_no_debris_and_names_the_target(tmp_path):
    path = atomic_write_json(tmp_path / "results.json", [1, 2, 3])

    def half_then_full(f):
        f.write(b"[4, 5")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what write() raises: no file name

    with pytest.raises(OSError) as err:
        atomic_write(path, half_then_full)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert path.read_text() == "[1, 2, 3]" and os.listdir(tmp_path) == ["results.json"]


def test_a_failing_fsync_is_a_failed_write(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left") as err:
        atomic_write_text(tmp_path / "a.txt", "x")
    assert err.value.filename == str(tmp_path / "a.txt") and os.listdir(tmp_path) == []


def test_a_read_only_folder_names_the_target_not_the_temporary_file(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):  # as root chmod cannot make a folder read-only: simulate EROFS
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / ".x.json.abc123.tmp"))

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    with pytest.raises(OSError) as err:
        atomic_write_text(tmp_path / "x.json", "{}")
    assert err.value.errno == errno.EROFS and err.value.filename == str(tmp_path / "x.json")


def test_a_path_under_a_file_is_an_os_error_naming_it(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(OSError) as err:
        atomic_write_text(tmp_path / "taken" / "out.json", "{}")
    assert str(tmp_path / "taken") in str(err.value.filename)


def test_an_exception_inside_atomic_path_removes_the_temporary_file(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "model.onnx") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("export failed")
    assert os.listdir(tmp_path) == []


def test_the_json_list_writer_gets_the_umask_permissions_and_names_a_full_disk(tmp_path, umask, monkeypatch):
    from anchordet.files import AtomicJsonListWriter

    umask(0o022)
    with AtomicJsonListWriter(tmp_path / "detections.json") as results:
        results.extend([{"a": 1}, {"b": 2}])
    assert _mode(tmp_path / "detections.json") == 0o644
    (tmp_path / "images.json").write_text("[]")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(OSError) as err:
        with AtomicJsonListWriter(tmp_path / "images.json") as images:
            images.append({"id": 0})
    assert err.value.filename == str(tmp_path / "images.json")
    assert (tmp_path / "images.json").read_text() == "[]"
    assert sorted(os.listdir(tmp_path)) == ["detections.json", "images.json"]


# ------------------------------------------------- issue 28, item 10: what kill -9 leaves behind
_KILLED_WRITER = """
import sys, time
from anchordet.files import AtomicJsonListWriter, atomic_path
folder = sys.argv[1]
results = AtomicJsonListWriter(folder + "/detections.json")
results.append({"image_id": 1})
with atomic_path(folder + "/picture.png") as tmp:
    open(tmp, "wb").write(b"half a picture")
    print("ready", flush=True)
    time.sleep(60)
"""


def _age(paths, seconds: float = 60.0) -> None:
    import time

    for path in paths:
        os.utime(path, (time.time() - seconds,) * 2)


def test_temp_files_of_a_killed_run_are_removed_by_the_next_predict_and_live_ones_kept(tmp_path, capsys):
    import signal
    import subprocess
    import sys

    from anchordet.cli.main import main
    from anchordet.files import AtomicJsonListWriter
    from helpers import digit_scene_files, write_tiny_weights

    out = tmp_path / "out"
    out.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    orphans = sorted(p.name for p in out.iterdir())
    assert len(orphans) == 2 and all(files.TEMP_FILE_NAME.match(n) for n in orphans)
    assert files.remove_stale_temp_files(out, min_age_s=0) == []  # its writer lives: locked
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    video_orphan = out / ".clip.k3x_9q2a.tmp.mp4"  # VideoWriter's naming
    video_orphan.write_bytes(b"")
    mine = out / ".notes.txt"  # not of our naming
    mine.write_text("keep")
    _age(list(out.iterdir()))
    live = AtomicJsonListWriter(out / "other.json")  # a run writing into the same folder now
    _age(out.glob(".other.json.*"))
    try:
        write_tiny_weights(tmp_path / "w.safetensors")
        [image] = digit_scene_files(tmp_path / "images", count=1)
        assert main(["predict", "-w", str(tmp_path / "w.safetensors"), str(image), "--out", str(out),
                     "--device", "cpu", "--no-draw"]) == 0
        assert f"removed 3 temporary file(s) of an interrupted run from {out}" in capsys.readouterr().err
        left = sorted(p.name for p in out.iterdir())
        assert left == sorted([".notes.txt", Path(live._tmp_name).name, "detections.json", "images.json"])
    finally:
        live.close()


def test_a_young_unlocked_temp_file_is_kept(tmp_path):
    young = tmp_path / ".a.json.abcd1234.tmp"
    young.write_text("[")
    assert files.remove_stale_temp_files(tmp_path) == [] and young.exists()
    _age([young])
    assert files.remove_stale_temp_files(tmp_path) == [young] and not young.exists()
