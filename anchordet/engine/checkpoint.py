"""Checkpoints that never lose work and never run pickled code.

* ``save_checkpoint``: the full training state (model, optimizer, scheduler, AMP scaler,
  epoch/iteration, RNG states, resolved config) written atomically: a temporary file in the same
  folder, flushed and fsynced, then renamed over the target (a crash mid-write leaves the
  previous checkpoint intact).
* ``load_checkpoint``: ``torch.load(weights_only=True)``; a file that would execute code is refused.
* ``save_weights`` / ``load_detector``: the model alone as safetensors, with the model config in
  the file's metadata, so a weights file is all `predict`, `evaluate` and `export` need.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anchordet.config.inference import InferenceSettings
from anchordet.config.schema import ExperimentConfig, ModelConfig
from anchordet.files import atomic_write

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
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{path}: refused to load: it is not a plain anchordet checkpoint or it is damaged "
            f"(anchordet loads checkpoints with weights_only=True and never runs pickled code; {first_line})"
        ) from exc
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path}: not an anchordet training checkpoint (no 'model' and 'config' entries); "
                         f"for a weights file use .safetensors written by anchordet")
    return state


def save_weights(path: str | Path, model: nn.Module, model_config: ModelConfig, metadata: dict | None = None) -> Path:
    """The model's weights as safetensors; the model config travels in the metadata."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    info = {"anchordet_model": json.dumps({"factory": model_config.factory, **model_config.args}),
            **{k: str(v) for k, v in (metadata or {}).items()}}
    data = save(tensors, metadata=info)
    return atomic_write(path, lambda f: f.write(data))


def read_model_config(path: str | Path) -> ModelConfig:
    """The model config stored in a weights file (``.safetensors``) or a training checkpoint."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        try:
            with safe_open(str(path), "pt") as f:
                metadata = f.metadata() or {}
        except Exception as exc:
            raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
        if "anchordet_model" not in metadata:
            raise ValueError(f"{path}: safetensors file without an anchordet model config; "
                             f"convert torchvision weights with `anchordet convert`")
        values = json.loads(metadata["anchordet_model"])
    else:
        values = dict(load_checkpoint(path)["config"]["model"])
        values.pop("sync_batch_norm", None)  # how training ran, not part of the network
        values.pop("init_weights", None)  # where the run started from, not part of the network
    factory = values.pop("factory")
    return ModelConfig(factory, values)


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Build the detector a weights file or checkpoint describes and load its weights (strict)."""
    path = Path(path)
    model_config = read_model_config(path)
    model = model_config.build()
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:  # a training checkpoint: its weights average when it has one, as the weights files hold
        checkpoint = load_checkpoint(path)
        state = checkpoint["ema"]["module"] if checkpoint.get("ema") else checkpoint["model"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit {model_config.factory}: missing {missing[:10]}, "
                         f"unexpected {unexpected[:10]}")
    return model.to(device).eval(), model_config


def read_inference_settings(path: str | Path) -> InferenceSettings:
    """The eval resize and class names stored with a model (``InferenceSettings``). Files
    without them (converted weights of old) give unknown settings: no resize, classes by index."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return InferenceSettings.from_metadata(f.metadata() or {}, str(path))
    extra = load_checkpoint(path).get("extra", {})
    return InferenceSettings.from_dict(extra.get("inference", {}), f"{path}: inference settings")
