"""A trainer's state in and out of ``last.pt`` / ``best.pt``: what ``save_checkpoint`` writes for a
``Trainer`` and what a resume (``--resume``) restores, checked against the config in use."""
from __future__ import annotations

from pathlib import Path

from anchordet import distributed as dist_utils
from anchordet.engine.checkpoint import changed_model_options, load_checkpoint, save_checkpoint, set_rng_states
from anchordet.errors import UserError
from anchordet.weights_file import load_model_state

RESUME_ENTRIES = ("optimizer", "scheduler", "epoch", "iteration", "iteration_in_epoch", "rng")


def save_training_state(trainer, name: str) -> Path:
    """Write ``trainer.out_dir / name`` from rank 0 (the others wait at a barrier); returns the path.
    ``trainer``: the ``engine.trainer.Trainer`` (not imported here: it imports this module)."""
    path = trainer.out_dir / name
    trainer.start_writing()
    if trainer.is_main:
        save_checkpoint(path, model=trainer.model, optimizer=trainer.optimizer, scheduler=trainer.scheduler,
                        scaler=trainer.scaler, epoch=trainer.epoch, iteration=trainer.iteration,
                        iteration_in_epoch=trainer.batch_in_epoch, config=trainer.config,
                        best_metric=trainer.best_metric,
                        ema=trainer.ema.state_dict() if trainer.ema is not None else None,
                        extra={"inference": trainer.inference_settings().to_dict(),
                               "early_stopping": trainer.early_stopping.state_dict(),
                               "precision": trainer.precision.name})  # what ran (run.precision may be auto)
    dist_utils.barrier()
    return path


def restore_training_state(trainer, path: str | Path) -> None:
    """Load a checkpoint's model, optimizer, scheduler, scaler, counters, RNG states, early
    stopping and EMA into ``trainer``; a UserError naming the file when it does not fit."""
    state = load_checkpoint(path, map_location=trainer.device)
    missing = [k for k in RESUME_ENTRIES if k not in state]
    if missing:
        raise UserError(f"{path}: not a resumable training checkpoint (no {', '.join(missing)}); "
                        f"to start from its weights use --weights")
    changed = changed_model_options(dict(state["config"].get("model") or {}), trainer.config.to_dict()["model"])
    load_model_state(trainer.model, state["model"], path, changed)
    try:
        trainer.optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as exc:  # torch's "parameter group doesn't match the size ..."
        raise UserError(f"{path}: the optimizer state does not fit the parameters this config trains{changed} "
                        f"({exc})") from exc
    trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.scaler is not None and state["scaler"]:
        trainer.scaler.load_state_dict(state["scaler"])
    trainer.epoch, trainer.iteration = int(state["epoch"]), int(state["iteration"])
    trainer.batch_in_epoch, trainer.best_metric = int(state["iteration_in_epoch"]), state["best_metric"]
    set_rng_states(state["rng"])
    trainer.early_stopping.load_state_dict(state.get("extra", {}).get("early_stopping", {}))
    if trainer.ema is not None and state.get("ema"):  # else (EMA turned on at resume) it starts here
        trainer.ema.load_state_dict(state["ema"])
