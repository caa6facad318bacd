"""Stop requests: Ctrl-C (SIGINT) and SIGTERM become a flag that training reads at fixed points.

Why a flag and not ``KeyboardInterrupt``: under DDP an exception raised wherever the signal lands
leaves each process at a different point (one in the barrier before a checkpoint, another in a
gradient all-reduce), and they all wait for each other forever. The handler here only records the
request; the trainer all-reduces it once per iteration (in the collective its budget check does
anyway), so every process stops after the same step and the checkpoint is written once.

A second request ends the process at once (``os._exit(128 + signal)``, nothing saved), unless it
comes within ``REPEAT_WINDOW_S`` of the first: a scheduler that signals every process of a job
while a launcher forwards the same signal delivers it twice, and that is still one request.
SIGTERM (what schedulers and ``kill`` send) is treated exactly like Ctrl-C.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)
REPEAT_WINDOW_S = 1.0

_request = {"signal": 0, "time": 0.0}
_previous: dict | None = None  # the handlers ours replaced, while ours are installed


def requested() -> int:
    """The signal number of the pending stop request (SIGINT or SIGTERM), 0 if none."""
    return int(_request["signal"])


def exit_status(signum: int) -> int:
    """The shell's status for a run stopped by ``signum``: 130 for Ctrl-C (also when 0: unknown),
    143 for SIGTERM."""
    return 128 + int(signum or signal.SIGINT)


def _handle(signum: int, frame) -> None:
    now = time.monotonic()
    if not _request["signal"]:
        _request.update(signal=signum, time=now)
        return
    if now - _request["time"] < REPEAT_WINDOW_S:
        return
    os.write(2, f"\nsignal {signum} again: quitting at once (nothing saved)\n".encode())
    os._exit(exit_status(signum))


def install() -> bool:
    """Install the handlers for SIGINT and SIGTERM and clear any old request; False (and nothing
    done) when they are installed already or this is not the main thread (signals cannot be
    handled there)."""
    global _previous
    if _previous is not None or threading.current_thread() is not threading.main_thread():
        return False
    _request.update(signal=0, time=0.0)
    _previous = {sig: signal.signal(sig, _handle) for sig in SIGNALS}
    return True


def uninstall() -> None:
    """Put back the handlers ``install`` replaced."""
    global _previous
    if _previous is None:
        return
    for sig, handler in _previous.items():
        signal.signal(sig, handler)
    _previous = None


@contextlib.contextmanager
def stop_requests():
    """While inside, SIGINT/SIGTERM set the flag ``requested()`` reads. Nested use (a launcher's
    child process installs them at its start) keeps the outer handlers and any pending request."""
    installed = install()
    try:
        yield
    finally:
        if installed:
            uninstall()
