"""The folder of one training run (``run.out_dir``): claimed, locked, and tidied when the run starts.

* A new run into a folder that holds another run's files is refused (one line saying how to
  resume it or where else to go), unless ``overwrite``: then the old run's files are removed when
  the new run starts writing, so metrics.jsonl and TensorBoard never mix two runs.
* Resuming into the checkpoint's own folder is allowed (that is what resuming is for).
* The folder is locked (``fcntl.flock`` on ``.anchordet.lock``) from the claim to ``release``:
  a second run into it while the first is going is refused in one line.
* Nothing is written until ``prepare`` (the trainer calls it at its first write, after the data
  and the model are built and the first step is taken): it removes the temporary files that a
  kill during an atomic write leaves (``.last.pt.*.tmp``, only our own names) and, with
  ``overwrite``, the previous run's files.

Torch-free.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from anchordet.errors import UserError

# What a training run writes into its folder (Trainer, RunLogger).
RUN_FILES = ("config.yaml", "last.pt", "best.pt", "model.safetensors", "best.safetensors", "metrics.jsonl",
             "curves.png")
RUN_FOLDERS = ("tensorboard",)
LOCK_NAME = ".anchordet.lock"


class RunFolderBusy(UserError):
    """Another run holds the folder's lock."""


class RunFolder:
    """``path``: the run's folder; ``resume``: the checkpoint the run continues (None: a new run);
    ``overwrite``: replace a previous run found there."""

    def __init__(self, path: str | Path, *, resume: str | Path | None = None, overwrite: bool = False):
        self.path = Path(path)
        self.overwrite = overwrite
        self.in_place = resume is not None and Path(resume).resolve().parent == self.path.resolve()
        self._lock = None  # the open lock file (a file object: garbage collection closes it, unlocking)
        self._created = False

    def claim(self) -> None:
        """Create and lock the folder and check that this run may write there (UserError if not)."""
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = os.fdopen(_lock(self.path / LOCK_NAME), "r+b", buffering=0)
        try:
            self._check()
        except BaseException:
            self.release()
            raise

    def previous_run(self) -> list[str]:
        """The names of another run's files in the folder (RUN_FILES, RUN_FOLDERS)."""
        return [name for name in RUN_FILES + RUN_FOLDERS if (self.path / name).exists()]

    def _check(self) -> None:
        found = self.previous_run()
        if not found or self.in_place or self.overwrite:
            return
        last = self.path / "last.pt"
        resume = f"continue it with --resume {last}, " if last.is_file() else ""
        raise UserError(f"{self.path} already holds a training run ({', '.join(found)}): {resume}choose another "
                        f"run.out_dir, or add --overwrite to replace it")

    def prepare(self) -> None:
        """At the run's first write: remove our stale temporary files and, with ``overwrite`` (and
        not resuming in place), the previous run's files."""
        for name in RUN_FILES:
            for stale in self.path.glob(f".{name}.*.tmp"):  # files.atomic_write's temporary names
                stale.unlink(missing_ok=True)
        if self.overwrite and not self.in_place:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name in RUN_FOLDERS:
                shutil.rmtree(self.path / name, ignore_errors=True)

    def release(self) -> None:
        """Unlock (and remove the lock file); a folder this run created and never wrote to goes too."""
        if self._lock is None:
            return
        # Unlinked while still locked: a run that opened the old file sees it is gone and retries.
        with contextlib.suppress(OSError):
            (self.path / LOCK_NAME).unlink()
        self._lock.close()
        self._lock = None
        if self._created:
            with contextlib.suppress(OSError):  # not empty: the run wrote its files
                self.path.rmdir()


def _lock(path: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive flock; RunFolderBusy if another holds it."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderBusy(f"{path.parent} is in use by another training run (process {holder}): wait for "
                                f"it to end, or choose another run.out_dir") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the holder released and removed it between our open and flock: again
