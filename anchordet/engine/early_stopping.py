"""Early stopping (``run.patience``): stop after N evaluations in a row without a better metric."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EarlyStopping:
    """Counts evaluations since the best one.

    Attributes:
        patience: evaluations without improvement that end training (0: never).
        evaluations_since_best: the count so far (saved in checkpoints, so a resumed run stops
            where the uninterrupted one would).
        best_epoch: the epoch of the best evaluation, or None.
    """

    patience: int = 0
    evaluations_since_best: int = 0
    best_epoch: int | None = None

    @property
    def due(self) -> bool:
        """True once ``patience`` evaluations in a row brought no better metric."""
        return self.patience > 0 and self.evaluations_since_best >= self.patience

    def record(self, improved: bool, epoch: int) -> bool:
        """Count one evaluation (after ``epoch`` epochs); True if training should stop now."""
        if improved:
            self.evaluations_since_best, self.best_epoch = 0, epoch
        else:
            self.evaluations_since_best += 1
        return self.due

    def state_dict(self) -> dict:
        return {"evaluations_since_best": self.evaluations_since_best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.evaluations_since_best = int(state.get("evaluations_since_best", 0))
        self.best_epoch = state.get("best_epoch")
