"""Checkpoints that never lose work and never run pickled code.

* ``save_checkpoint``: the full training state (model, optimizer, scheduler, AMP scaler,
  epoch/iteration, RNG states, resolved config) written atomically: a temporary file in the same
  folder, flushed and fsynced, then renamed over the target (a crash mid-write leaves the
  previous checkpoint intact).
* ``load_checkpoint``: ``torch.load(weights_only=True)``; a file that would execute code is refused.
Weights files (the model alone, as safetensors) are written and read by ``anchordet.weights_file``.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from anchordet.config.schema import ExperimentConfig
from anchordet.errors import UserError
from anchordet.files import atomic_write
from anchordet.weights_file import is_checkpoint, read_torch_file

CHECKPOINT_VERSION = 1


def rng_states() -> dict:
    """Python, numpy and torch RNG states as tensors and plain lists (loadable with weights_only)."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    states = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | Path, *, model: nn.Module, optimizer, scheduler, scaler, epoch: int,
                    iteration: int, iteration_in_epoch: int, config: ExperimentConfig,
                    best_metric: float | None = None, extra: dict | None = None, ema: dict | None = None) -> Path:
    """Everything needed to continue training exactly where it stopped.

    ``epoch``/``iteration_in_epoch``: the next batch to train is batch ``iteration_in_epoch`` of
    ``epoch``; ``iteration``: optimizer steps done so far; ``ema``: ``ModelEMA.state_dict()``
    (the weights average, ``solver.ema_decay``), or None.
    """
    state = {
        "version": CHECKPOINT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "epoch": epoch,
        "iteration": iteration,
        "iteration_in_epoch": iteration_in_epoch,
        "rng": rng_states(),
        "config": config.to_dict(),
        "best_metric": best_metric,
        "extra": extra or {},
    }
    if ema is not None:
        state["ema"] = ema
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint`` without executing any pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = read_torch_file(path, map_location)
    if not is_checkpoint(state):
        raise UserError(f"{path}: not an anchordet training checkpoint (no 'model' and 'config' entries); "
                        f"for a weights file use .safetensors written by anchordet")
    return state


def changed_model_options(saved: dict, current: dict) -> str:
    """" (checkpoint: model.num_classes=10, now 5; ...)" for the model options that differ
    between a checkpoint's config and the config in use; "" when none do."""
    keys = sorted(set(saved) | set(current), key=str)
    changes = [f"model.{k}={saved.get(k, '(default)')!r}, now {current.get(k, '(default)')!r}"
               for k in keys if saved.get(k) != current.get(k)]
    return f" (the checkpoint was trained with {'; '.join(changes)})" if changes else ""
