"""Writing files so that a crash, a full disk or Ctrl-C never leaves half a file behind.

Every file a command writes goes through ``atomic_write``: the data goes to a temporary file in
the same folder, is flushed and fsynced, then renamed over the target (a rename within one
file system is atomic). Torch-free, so torch-free commands can use it.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, write: Callable[[Any], None]) -> Path:
    """Call ``write(file_object)`` on a temporary file next to ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent))


def _fsync_directory(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicJsonListWriter:
    """A JSON list written item by item to a temporary file and renamed into place by ``close``:
    memory does not grow with the number of items, and readers never see half a file.

        with AtomicJsonListWriter(out / "detections.json") as results:
            results.extend(batch_results)

    Leaving the ``with`` block, normally or by an exception (Ctrl-C included), commits the items
    written so far; ``discard()`` drops them instead.
    """

    def __init__(self, path: str | Path, indent: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.indent = indent
        fd, self._tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._file.write("[")
        self.count = 0

    def append(self, item: Any) -> None:
        text = json.dumps(item, indent=self.indent)
        self._file.write(("," if self.count else "") + ("\n" if self.indent is not None else "") + text)
        self.count += 1

    def extend(self, items) -> None:
        for item in items:
            self.append(item)

    def close(self) -> Path:
        """Finish the list, fsync, rename over ``path``."""
        if self._file.closed:
            return self.path
        try:
            self._file.write("\n]" if self.indent is not None and self.count else "]")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp_name, self.path)
        except BaseException:
            self.discard()
            raise
        _fsync_directory(self.path.parent)
        return self.path

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        Path(self._tmp_name).unlink(missing_ok=True)

    def __enter__(self) -> "AtomicJsonListWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
