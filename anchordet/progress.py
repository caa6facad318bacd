"""Progress of long loops: a tqdm bar on a terminal, plain lines in a file or a pipe.

Why: tqdm redraws its bar with carriage returns; written to a log file (``anchordet demo > log``,
a scheduler's output file) every redraw stays, and the log becomes thousands of lines of bar. So
the bar is drawn only when the stream is a terminal; elsewhere ``Progress`` prints one line every
``every`` steps and one when the loop ends. Every loop with progress uses this helper (training
epochs, evaluation); ``write`` prints a message without breaking a bar. Torch-free.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """Progress over ``total`` steps (None: unknown), starting at ``initial`` (a resumed epoch).

    ``update(n, **values)`` advances and shows ``values`` (loss=0.51, ...). Off a terminal a line
    ``DESC: COUNT/TOTAL, key value, ...`` is printed every ``every`` steps (0: never) or, with
    ``every_s``, every that many seconds, and with ``end_line`` once at ``close``. ``unit`` (e.g.
    "frame") counts as "120 frames" and adds the rate ("12.0 frames/s"). ``enabled=False`` shows
    nothing (other ranks, --no-progress).
    """

    def __init__(self, total: int | None, desc: str, *, initial: int = 0, every: int = 20, every_s: float = 0.0,
                 unit: str = "", end_line: bool = True, enabled: bool = True, stream: TextIO | None = None):
        self.total, self.desc, self.count, self.every, self.every_s = total, desc, initial, every, every_s
        self.initial, self.unit, self.end_line, self.enabled = initial, unit, end_line, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.values: dict = {}
        self.started = self.last_line = time.monotonic()
        self.bar = None
        if enabled and is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit or "it", leave=False,
                            dynamic_ncols=True, file=self.stream)

    @property
    def rate(self) -> float:
        """Steps per second since the start."""
        return (self.count - self.initial) / max(time.monotonic() - self.started, 1e-9)

    def update(self, n: int = 1, **values) -> None:
        self.count += n
        self.values = values
        if self.bar is not None:
            self.bar.update(n)
            if values:
                self.bar.set_postfix(values, refresh=False)
        elif self.enabled and self._line_due():
            self._line()

    def _line_due(self) -> bool:
        if self.every_s:
            return time.monotonic() - self.last_line >= self.every_s
        before_end = self.total is None or self.count < self.total  # the end has its own line
        return bool(self.every) and self.count % self.every == 0 and before_end

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and self.end_line and self.count > self.initial:
            self._line(f"{time.monotonic() - self.started:.1f} s")
        self.enabled = False  # closing twice prints nothing more

    def _line(self, *extra: str) -> None:
        self.last_line = time.monotonic()
        if self.unit:
            counted = [f"{self.count} {self.unit}s", f"{self.rate:.1f} {self.unit}s/s"]
        else:
            counted = [f"{self.count}/{self.total}" if self.total is not None else str(self.count)]
        parts = [f"{self.desc}: {counted[0]}", *counted[1:], *(f"{k} {v}" for k, v in self.values.items()), *extra]
        print(", ".join(parts), file=self.stream, flush=True)


def write(text: str, stream: TextIO | None = None) -> None:
    """Print a line; on a terminal through tqdm, so that a bar being drawn is not broken."""
    stream = stream if stream is not None else sys.stdout
    if is_terminal(stream):
        from tqdm import tqdm

        tqdm.write(text, file=stream)
    else:
        print(text, file=stream, flush=True)
