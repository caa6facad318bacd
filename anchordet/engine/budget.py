"""A run's budget: ``run.stop_after_iters``, ``run.max_minutes`` and ``run.fit_epochs_to_budget``.

``RunBudget`` counts this run's iterations and time; the trainer asks it after each iteration
whether the budget is spent and, once, how many epochs fit (``epochs_that_fit``)."""
from __future__ import annotations

import time

from anchordet.config.schema import RunConfig

# run.fit_epochs_to_budget times iterations FIT_MEASURE_FROM..FIT_MEASURE_TO of a run (the first
# ones are slower: start-up, allocator warm-up) and plans to use FIT_SAFETY of the budget (the rest
# covers what the timing misses: evaluations, checkpoints, slower late iterations).
FIT_MEASURE_FROM, FIT_MEASURE_TO = 10, 40
FIT_SAFETY = 0.95


def epochs_that_fit(seconds_per_iter: float, seconds_used: float, iterations_done: int, budget_seconds: float,
                    iters_per_epoch: int, min_epochs: int, max_epochs: int) -> int:
    """How many epochs of ``iters_per_epoch`` iterations end within ``FIT_SAFETY * budget_seconds``
    when ``iterations_done`` are done, ``seconds_used`` are spent and each further iteration takes
    ``seconds_per_iter``; clamped to [min_epochs, max_epochs] (the epoch under way always ends)."""
    more = max(0.0, FIT_SAFETY * budget_seconds - seconds_used) / max(seconds_per_iter, 1e-9)
    fitting = int((iterations_done + more) // iters_per_epoch)
    return max(min_epochs, min(max_epochs, fitting))


class RunBudget:
    """This process's view of the budget of one ``fit`` call (a resumed run starts a new one)."""

    def __init__(self, run: RunConfig):
        self.run = run
        self.started = time.monotonic()
        self.iterations = 0  # this run's optimizer steps
        self._fit_clock: float | None = None  # set at iteration FIT_MEASURE_FROM

    def count_iteration(self) -> None:
        self.iterations += 1

    def spent(self) -> bool:
        """run.stop_after_iters or run.max_minutes reached (the trainer reduces it over processes)."""
        over_iters = self.run.stop_after_iters and self.iterations >= self.run.stop_after_iters
        over_time = self.run.max_minutes and (time.monotonic() - self.started) > 60 * self.run.max_minutes
        return bool(over_iters or over_time)

    def fitted_epochs(self, iteration: int, epoch: int, iters_per_epoch: int,
                      max_epochs: int) -> tuple[int, float] | None:
        """``run.fit_epochs_to_budget``: at iteration FIT_MEASURE_TO of this run, (the epochs that
        fit ``run.max_minutes``, seconds per iteration timed since FIT_MEASURE_FROM); else None.
        ``iteration``: optimizer steps done in all (a resumed run counts its earlier ones);
        ``epoch``: the epoch under way (it always ends)."""
        if not self.run.fit_epochs_to_budget:
            return None
        if self.iterations == FIT_MEASURE_FROM:
            self._fit_clock = time.monotonic()
        if self.iterations != FIT_MEASURE_TO:
            return None
        now = time.monotonic()
        per_iter = (now - self._fit_clock) / (FIT_MEASURE_TO - FIT_MEASURE_FROM)
        epochs = epochs_that_fit(seconds_per_iter=per_iter, seconds_used=now - self.started,
                                 iterations_done=iteration, budget_seconds=60 * self.run.max_minutes,
                                 iters_per_epoch=iters_per_epoch, min_epochs=epoch + 1, max_epochs=max_epochs)
        return epochs, per_iter
