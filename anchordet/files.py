"""Reading JSON fast and YAML within bounds, and writing files so that a crash, a full disk or
Ctrl-C never leaves half a file behind.

``load_json`` reads the large JSON files users give (COCO annotation files of hundreds of MB,
results files of 500k entries) with orjson when it is installed, with the garbage collector
paused: the collector's passes over half a million fresh dicts cost more than the parse itself.
A file nested deeper than the parsers go (about 1000 levels) is one line, not a RecursionError.

``load_yaml`` reads the small YAML files users write (dataset descriptions, configs) with
bounds on size, nesting and alias expansion: a 337-byte "billion laughs" file of nested
``&anchor`` / ``*alias`` lists expands to billions of values (6 GB and a 2 GB error line when
anything walks it), so the expanded size is counted on the parsed node graph before any Python
object is built.

Every file a command writes goes through ``atomic_write``: the data goes to a temporary file in
the same folder, is flushed and fsynced, then renamed over the target (a rename within one
file system is atomic). Writers that want a file name rather than a file object (ONNX export)
use ``atomic_path``. Torch-free, so torch-free commands can use it.

A writer holds an exclusive ``flock`` on its temporary file while it writes; the OS drops it when
the process dies, ``kill -9`` included, so ``remove_stale_temp_files`` (run by the next command
writing to that folder) can tell an orphan (unlocked) from a live writer's file (locked).

The file gets the permissions an ordinary ``open(path, "w")`` would give it: those of the file
it replaces, else ``0o666`` minus the umask (``tempfile.mkstemp`` alone makes it ``0o600``).
An ``OSError`` (read-only folder, full disk, a file where a folder should be) names the target
path, never the temporary one, so the CLI can print it as one line.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from anchordet.errors import UserError

try:
    import orjson
except ImportError:  # optional speed-up: the standard library parses the same files
    orjson = None

try:
    import fcntl
except ImportError:  # not on Windows: temporary files are then never taken for stale
    fcntl = None

# The temporary files of our writers: ".<target name>.<8 characters of mkstemp>.tmp", and
# ".<stem>.<8>.tmp.<suffix>" for videos (FFmpeg picks the format by the suffix).
TEMP_FILE_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")
STALE_AFTER_S = 2.0  # younger files are left alone: a writer locks its file just after creating it

# Dataset YAMLs and configs are a few kB; the largest real one (an ultralytics YAML naming 1000
# ImageNet classes) has about 1000 values, 3 levels deep.
MAX_YAML_BYTES = 16 * 2**20
MAX_YAML_VALUES = 1_000_000  # after alias expansion
MAX_YAML_DEPTH = 100


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic garbage collector (building many containers triggers it over and over)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_json(path: str | Path) -> Any:
    """Read a JSON file; malformed JSON raises ``UserError`` naming the file and the position.

    orjson first; what it refuses (``NaN`` / ``Infinity``, integers beyond 64 bits, invalid
    UTF-8) goes to the standard library, so both give the same values and the same errors.
    """
    path = Path(path)
    data = path.read_bytes()
    with paused_gc():
        if orjson is not None:
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
        try:
            return json.loads(data.decode("utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: malformed JSON: {exc}") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text: {exc}") from None
        except RecursionError:  # orjson stops at 1024 levels, the standard library near 1000
            raise UserError(f"{path}: JSON nested more than about 1000 levels deep (a COCO or results file "
                            "has 4): not read") from None


def load_yaml_file(path: str | Path, error: type[UserError] = UserError) -> Any:
    """A YAML file read with ``load_yaml``'s bounds, its size checked before it is read; a file
    that is not UTF-8 is ``error`` too."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise error(f"{path}: {size} bytes of YAML; a dataset description or config is a few kB "
                    f"(at most {MAX_YAML_BYTES})")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return load_yaml(text, path, error)


def load_yaml(text: str, source: str | Path, error: type[UserError] = UserError) -> Any:
    """``yaml.safe_load(text)`` within bounds: at most ``MAX_YAML_BYTES`` of text,
    ``MAX_YAML_DEPTH`` levels and ``MAX_YAML_VALUES`` values once aliases are expanded (a
    recursive alias, ``&a [*a]``, never ends: refused too). Every error is ``error`` (a
    ``UserError``), one line naming ``source``."""
    if len(text) > MAX_YAML_BYTES:
        raise error(f"{source}: {len(text)} characters of YAML; a dataset description or config is a few kB "
                    f"(at most {MAX_YAML_BYTES})")
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except _YamlTooLarge as exc:
        raise error(f"{source}: {exc}: refused") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML ({' '.join(str(exc).split())})") from None


class _YamlTooLarge(Exception):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting while composing and the expanded size of the composed
    node graph (aliases share nodes there, so the count is linear in the file) before
    constructing anything."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _YamlTooLarge(f"YAML nested more than {MAX_YAML_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _expanded_values(node, {}, set())
        return node


def _expanded_values(node: yaml.Node, counted: dict[int, int], open_nodes: set[int]) -> int:
    """Values in ``node`` with every alias expanded; raises _YamlTooLarge past MAX_YAML_VALUES or
    on a node that contains itself. Recursion depth is bounded by MAX_YAML_DEPTH."""
    key = id(node)
    if key in counted:
        return counted[key]
    if key in open_nodes:
        raise _YamlTooLarge("YAML alias refers to a node that contains it (an endless value)")
    if isinstance(node, yaml.ScalarNode):
        return 1
    open_nodes.add(key)
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
    total = 1
    for child in children:
        total += _expanded_values(child, counted, open_nodes)
        if total > MAX_YAML_VALUES:
            raise _YamlTooLarge(f"YAML expands to more than {MAX_YAML_VALUES} values through its aliases "
                                "(*name repeats what &name marks)")
    open_nodes.discard(key)
    counted[key] = total
    return total


def atomic_write(path: str | Path, write: Callable[[Any], None]) -> Path:
    """Call ``write(file_object)`` on a temporary file next to ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            try:
                write(f)
            except Exception as exc:
                # torch.save reports a failed write (ENOSPC) as RuntimeError("[enforce fail at
                # inline_container.cc ...] unexpected pos"), the OSError only as its context: the
                # OSError is the error (one line naming the target; the previous file stays).
                cause = os_error_behind(exc)
                if cause is None:
                    raise
                raise cause from None
            f.flush()
            os.fsync(f.fileno())
    return path


def os_error_behind(exc: BaseException) -> OSError | None:
    """The ``OSError`` that ``exc`` is, or that it was raised from or while handling (None if none)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file name next to ``path`` to write to; when the block ends without an
    exception the file is fsynced, given ``path``'s permissions and renamed over ``path``;
    otherwise it is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp_name, fd = None, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        lock_temp_file(fd)  # held until the rename: the file is not stale while we live
        yield Path(tmp_name)
        _fsync_file(tmp_name)
        os.chmod(tmp_name, target_mode(path))
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise _naming(exc, path, tmp_name) from exc
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)
    _fsync_directory(path.parent)


def lock_temp_file(fd: int) -> None:
    """Mark a fresh temporary file as being written (an exclusive ``flock`` on ``fd``, kept
    until ``fd`` is closed; the OS releases it when the process dies)."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a file system without locks: the file may later be taken for stale
            pass


def remove_stale_temp_files(folder: str | Path, min_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the temporary files of our naming (``TEMP_FILE_NAME``) in ``folder`` that no live
    writer holds: what a killed command (``kill -9``, a power cut) left behind. A file younger
    than ``min_age_s`` or locked by a writer is kept. Returns the removed files."""
    if fcntl is None:
        return []
    try:
        entries = [e for e in os.scandir(folder) if TEMP_FILE_NAME.match(e.name) and e.is_file(follow_symlinks=False)]
    except OSError:
        return []
    removed, now = [], time.time()
    for entry in entries:
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a live writer holds it
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent))


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux), since
    ``os.umask`` can only be read by setting it (a window in which other threads' files would
    get the wrong permissions)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def target_mode(path: Path) -> int:
    """The permissions a file written to ``path`` gets: those of the file it replaces, else
    0o666 minus the umask (what ``open(path, "w")`` gives; ``mkstemp`` alone gives 0o600)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _naming(exc: OSError, path: Path, tmp_name: str | None) -> OSError:
    """``exc`` naming ``path`` where it names no file (a failed write) or the temporary file."""
    temporary = exc.filename is not None and Path(exc.filename).name.startswith(f".{path.name}.")
    if exc.filename is not None and exc.filename != tmp_name and not temporary:
        return exc
    try:
        return type(exc)(exc.errno, exc.strerror or str(exc), str(path))
    except TypeError:  # an OSError subclass with another constructor
        return exc


def _fsync_file(name: str) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        self.indent = indent
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as exc:
            raise _naming(exc, self.path, None) from exc
        lock_temp_file(fd)  # released when the file is closed (or the process dies)
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._file.write("[")
        self.count = 0

    def append(self, item: Any) -> None:
        text = json.dumps(item, indent=self.indent)
        try:
            self._file.write(("," if self.count else "") + ("\n" if self.indent is not None else "") + text)
        except OSError as exc:  # a full disk: named, and the temporary file goes
            self.discard()
            raise _naming(exc, self.path, self._tmp_name) from exc
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
            os.chmod(self._tmp_name, target_mode(self.path))
            os.replace(self._tmp_name, self.path)
        except OSError as exc:
            self.discard()
            raise _naming(exc, self.path, self._tmp_name) from exc
        except BaseException:
            self.discard()
            raise
        _fsync_directory(self.path.parent)
        return self.path

    def discard(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:  # the buffered rest cannot be written either (full disk): the file goes anyway
                pass
        Path(self._tmp_name).unlink(missing_ok=True)

    def __enter__(self) -> "AtomicJsonListWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
