"""Local multi-process training without torchrun: ``anchordet train --procs N``.

Why: on some CPUs the small detectors of the digits presets hardly speed up with a second torch
thread (the convolutions are too small to split well: 50 img/s with 1 thread, 58 with 2 on the
2-core Zen 3 VM of 2026-11-23), but two processes of one thread each, joined by
DistributedDataParallel over gloo, train 75-80 img/s there; on the Zen 5 VM of 2026-11-30 the two
ways are even (BENCHMARKS.md). ``torchrun --nproc_per_node N`` does the same; this launcher
saves the user from typing it and lets ``anchordet demo`` do it by itself.

Each child process gets the environment torchrun would give it (RANK, WORLD_SIZE, MASTER_ADDR,
...), so the trainer's process-group code is the same for both launchers.
"""
from __future__ import annotations

import os
import pickle
import socket
import traceback
from typing import Any, Callable

import torch.multiprocessing as mp


class ChildProcessFailed(RuntimeError):
    """A training process raised; the message holds its traceback and ``exception`` the
    exception itself (the first failing rank's; None if it could not be pickled back)."""

    def __init__(self, message: str, exception: BaseException | None = None):
        super().__init__(message)
        self.exception = exception


def cpu_count() -> int:
    """CPU cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_process(processes: int) -> int:
    return max(1, cpu_count() // processes)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child(rank: int, world: int, port: int, target: Callable, args: tuple, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from anchordet.engine import distributed

    try:
        results.put((rank, "ok", target(*args)))
        distributed.cleanup()
    except KeyboardInterrupt:
        results.put((rank, "interrupted", None))
    except BaseException as exc:  # noqa: BLE001 - report any failure to the parent, then exit non-zero
        results.put((rank, "error", (f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", _picklable(exc))))
        raise SystemExit(1)


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
    in any process raises ``ChildProcessFailed`` with that process's traceback. Ctrl-C reaches
    every process (they share the terminal's process group); the parent waits for them to save
    their checkpoint and exit.
    """
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    port = _free_port()
    children = [context.Process(target=_child, args=(rank, processes, port, target, args, results), daemon=False)
                for rank in range(processes)]
    for child in children:
        child.start()
    for child in children:
        while True:
            try:
                child.join()
                break
            except KeyboardInterrupt:  # the children got it too: let them save and stop
                continue
    reports = {}
    while not results.empty():
        rank, status, value = results.get()
        reports[rank] = (status, value)
    errors = [(rank, value) for rank, (status, value) in sorted(reports.items()) if status == "error"]
    if errors:
        raise ChildProcessFailed("\n".join(f"process {rank}: {text}" for rank, (text, _) in errors), errors[0][1][1])
    missing = [rank for rank, child in enumerate(children) if rank not in reports]
    if missing:
        codes = {rank: children[rank].exitcode for rank in missing}
        raise ChildProcessFailed(f"training processes {missing} died without a report (exit codes {codes}; "
                                 "out of memory?)")
    status, value = reports[0]
    if status == "interrupted":
        raise KeyboardInterrupt
    return value
