"""Local multi-process training without torchrun: ``anchordet train --procs N``.

Why: on some CPUs the small detectors of the digits presets hardly speed up with a second torch
thread (the convolutions are too small to split well: 50 img/s with 1 thread, 58 with 2 on the
2-core Zen 3 VM of 2026-11-23), but two processes of one thread each, joined by
DistributedDataParallel over gloo, train 75-80 img/s there; on the Zen 5 VM of 2026-11-30 the two
ways are even (BENCHMARKS.md). ``torchrun --nproc_per_node N`` does the same; this launcher
saves the user from typing it and lets ``anchordet demo`` do it by itself.

Each child process gets the environment torchrun would give it (RANK, WORLD_SIZE, MASTER_ADDR,
...), so the trainer's process-group code is the same for both launchers.

Signals and failures, as torchrun handles them: each child runs in its own session, so Ctrl-C at
the terminal reaches the parent alone, which forwards it (and SIGTERM) to every child once; the
children stop together at the next iteration (``anchordet.engine.interrupt``). A second Ctrl-C
kills the children and the parent at once. The first child to fail is the one reported; the
others are killed then (they would wait for it in a collective, or fail with gloo's "Connection
closed by peer", which only hides the real message).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import time
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable

import torch.multiprocessing as mp

from anchordet.devices import cpu_count
from anchordet.engine import interrupt


# Seconds a process may take to exit once it has reported its result (process-group teardown,
# interpreter exit) before it is killed.
TEARDOWN_GRACE_S = 60.0


class ChildProcessFailed(RuntimeError):
    """A training process raised; the message holds its traceback and ``exception`` the
    exception itself (the first failing rank's; None if it could not be pickled back)."""

    def __init__(self, message: str, exception: BaseException | None = None):
        super().__init__(message)
        self.exception = exception


def threads_per_process(processes: int) -> int:
    return max(1, cpu_count() // processes)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child(rank: int, world: int, port: int, parent: int, target: Callable, args: tuple, results) -> None:
    _detach(parent)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from anchordet import distributed

    try:
        results.put((rank, "ok", target(*args)))
    except KeyboardInterrupt:
        results.put((rank, "interrupted", None))
    except BaseException as exc:  # noqa: BLE001 - report any failure to the parent, then exit non-zero
        results.put((rank, "error", (f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", _picklable(exc))))
        raise SystemExit(1)
    # After the report: a failure in torch's process-group teardown (a gloo thread aborting the
    # process, seen in tests) does not undo a result that is complete.
    distributed.cleanup()


def _detach(parent: int) -> None:
    """Start of a child: its own session (the terminal's Ctrl-C goes to the parent, which forwards
    it once), stop requests as a flag from now on, SIGTERM when the parent dies (Linux), then take
    the signals the parent blocked while starting it (a request sent meanwhile is pending)."""
    os.setsid()
    interrupt.install()
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # it died before prctl
            os.kill(os.getpid(), signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, interrupt.SIGNALS)


def _picklable(exc: BaseException) -> BaseException | None:
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - any pickling failure: send the text only
        return None
    return exc


def run_processes(target: Callable[..., Any], processes: int, *args) -> Any:
    """Run ``target(*args)`` in ``processes`` fresh local processes that form one process group
    (gloo on CPU, NCCL on GPUs: the trainer picks) and return rank 0's result.

    ``target`` must be a module-level function (it is pickled into spawned processes). A failure
    in any process raises ``ChildProcessFailed`` with the first failing process's traceback and
    exception; the other processes are killed then. SIGINT / SIGTERM received here are forwarded
    to every process (once; the trainer stops them together); a second one kills them and exits.
    """
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    port = _free_port()
    children = [context.Process(target=_child, args=(rank, processes, port, os.getpid(), target, args, results),
                                daemon=False) for rank in range(processes)]
    with _forwarding_signals(children):
        # Blocked while starting: a child inherits the mask and unblocks once its handlers are in.
        signal.pthread_sigmask(signal.SIG_BLOCK, interrupt.SIGNALS)
        try:
            for child in children:
                child.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, interrupt.SIGNALS)
        reports, first_error = _collect(children, results)
    if first_error is not None:
        text, exception = reports[first_error][1]
        raise ChildProcessFailed(f"process {first_error}: {text}", exception)
    missing = [rank for rank, child in enumerate(children) if rank not in reports]
    if missing:
        codes = {rank: children[rank].exitcode for rank in missing}
        raise ChildProcessFailed(f"training processes {missing} died without a report (exit codes {codes}; "
                                 "out of memory?)")
    status, value = reports[0]
    if status == "interrupted":
        raise KeyboardInterrupt
    return value


def _collect(children: list, results) -> tuple[dict, int | None]:
    """Wait for every child; rank -> (status, value) of their reports, and the rank that reported
    an error first (the others are killed at that moment). Once every child has reported, those
    still alive after ``TEARDOWN_GRACE_S`` are killed: a process hanging in torch's process-group
    teardown must not keep a finished run from returning."""
    reports: dict = {}
    first_error = None
    all_reported_at = None
    while True:
        alive = [child for child in children if child.is_alive()]
        if all_reported_at is None and len(reports) == len(children):
            all_reported_at = time.monotonic()
        if alive and all_reported_at is not None and time.monotonic() - all_reported_at > TEARDOWN_GRACE_S:
            os.write(2, f"training processes {[children.index(c) for c in alive]} did not exit "
                        f"{TEARDOWN_GRACE_S:g} s after their report: killed\n".encode())
            _kill(alive)
            alive = []
        # After the first error the queue is left alone: a killed child may have left half a
        # message in it, and the other reports are not needed.
        while first_error is None and not results.empty():
            rank, status, value = results.get()
            if rank in reports:  # a process reports once; this guards against a second message
                continue
            reports[rank] = (status, value)
            if status == "error":
                first_error = rank
                _kill(child for index, child in enumerate(children) if index != rank)
        if not alive:
            break
        wait([child.sentinel for child in alive], timeout=0.1)
    for child in children:
        child.join()
    return reports, first_error


def _kill(children) -> None:
    for child in children:
        with contextlib.suppress(ProcessLookupError, TypeError):  # TypeError: never started (pid None)
            os.kill(child.pid, signal.SIGKILL)


@contextlib.contextmanager
def _forwarding_signals(children: list):
    """While inside, SIGINT and SIGTERM go on to the children (see the module docstring)."""
    first = {"signal": 0, "time": 0.0}

    def forward(signum, frame):
        now = time.monotonic()
        if first["signal"] and now - first["time"] < interrupt.REPEAT_WINDOW_S:
            return  # the same request delivered twice
        if first["signal"]:
            _kill(children)
            os.write(2, f"\nsignal {signum} again: stopped the training processes\n".encode())
            os._exit(interrupt.exit_status(signum))
        first.update(signal=signum, time=now)
        # os.write to fd 2, not print: a handler must not write into a buffered stream that the code
        # it interrupted may be writing to
        os.write(2, f"\nstopping: the {len(children)} training processes finish their step and save a checkpoint "
                    "(signal again to quit at once)\n".encode())
        for child in children:
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(child.pid, signum)

    try:
        previous = {sig: signal.signal(sig, forward) for sig in interrupt.SIGNALS}
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
