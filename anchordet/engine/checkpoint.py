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

from anchordet.config.inference import METADATA_KEY, InferenceSettings
from anchordet.config.metadata import MAX_PARAMETERS, parse_json_field
from anchordet.config.schema import ExperimentConfig, ModelConfig, model_values
from anchordet.errors import UserError, torch_load_refusal
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
        raise UserError(f"{path}: refused to load: it is not a plain anchordet checkpoint or it is damaged "
                        f"(anchordet never runs pickled code; {torch_load_refusal(exc)})") from exc
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or not isinstance(state.get("config"), dict):
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


def load_model_state(model: nn.Module, state: dict, path: str | Path, hint: str = "") -> None:
    """``model.load_state_dict(state)`` after checking every key and shape: a UserError naming
    ``path`` and the first mismatching tensors (plus ``hint``) instead of torch's traceback."""
    from anchordet.backbones.weights import state_dict_mismatch

    mismatch = state_dict_mismatch(model.state_dict(), state)
    if mismatch:
        raise UserError(f"{path}: the weights do not fit the model{hint}: {mismatch}")
    model.load_state_dict(state)


def save_weights(path: str | Path, model: nn.Module, model_config: ModelConfig, metadata: dict | None = None) -> Path:
    """The model's weights as safetensors; the model config travels in the metadata. Identical
    weights and settings give identical bytes (users compare weights files by checksum)."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    model_values_json = json.dumps({"factory": model_config.factory, **model_config.args}, sort_keys=True)
    info = {"anchordet_model": model_values_json, **{k: str(v) for k, v in (metadata or {}).items()}}
    data = canonical_safetensors(save(tensors, metadata=info))
    return atomic_write(path, lambda f: f.write(data))


def canonical_safetensors(data: bytes) -> bytes:
    """A safetensors file with its JSON header rewritten with sorted keys: safetensors keeps the
    metadata in a Rust HashMap, whose order changes from one process to the next, so two runs
    that saved the same tensors wrote different bytes. The tensor data and the offsets into it
    are untouched; the header is padded with spaces to 8 bytes as safetensors pads it."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + length:]


def read_model_config(path: str | Path) -> ModelConfig:
    """The model config stored in a weights file (``.safetensors``) or a training checkpoint,
    checked (``anchordet.config.metadata``): a bad one is a UserError naming the file and field."""
    return _model_config(path, _written_metadata(path)[0])


def read_inference_settings(path: str | Path, num_classes: int | None = None) -> InferenceSettings:
    """The eval resize and class names stored with a model (``InferenceSettings``), checked
    against ``num_classes`` (default: the file's model config). Files without them (converted
    weights of old) give unknown settings: no resize, classes by index."""
    model, inference, _ = _written_metadata(path)
    if num_classes is None:
        num_classes = _model_config(path, model).num_classes
    return _inference_settings(path, inference, num_classes)


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Build the detector a weights file or checkpoint describes and load its weights (strict).

    Every metadata field is checked first; then the model is built on the meta device (no
    memory) to refuse a file whose config would allocate more than ``MAX_PARAMETERS``. Its
    ``backbone_weights`` are not loaded (the file's weights replace them)."""
    path = Path(path)
    model_values_written, inference, checkpoint = _written_metadata(path)
    model_config = _model_config(path, model_values_written)
    _inference_settings(path, inference, model_config.num_classes)
    build_config = ModelConfig(model_config.factory, {k: v for k, v in model_config.args.items()
                                                      if k != "backbone_weights"})
    with torch.device("meta"):
        size = sum(t.numel() for t in build_config.build().state_dict().values())
    if size > MAX_PARAMETERS:
        raise UserError(f"{path}: its model config ({model_config.factory}, num_classes "
                        f"{model_config.num_classes}) makes {size:,} parameters, more than the "
                        f"{MAX_PARAMETERS:,} any model here needs")
    model = build_config.build()
    if checkpoint is None:
        from anchordet.backbones.weights import read_safetensors

        state = read_safetensors(path)
    else:  # a training checkpoint: its weights average when it has one, as the weights files hold
        ema = checkpoint.get("ema")
        state = ema["module"] if isinstance(ema, dict) and ema.get("module") else checkpoint["model"]
    load_model_state(model, state, path, f" its metadata describes ({model_config.factory})")
    return model.to(device).eval(), model_config


def _model_config(path: str | Path, values) -> ModelConfig:
    factory, args = model_values(values, str(path))
    return ModelConfig(factory, args)


def _inference_settings(path: str | Path, written: dict | str | None, num_classes: int) -> InferenceSettings:
    if isinstance(written, str):  # a weights file's metadata entry
        return InferenceSettings.from_metadata({METADATA_KEY: written}, str(path), num_classes)
    return InferenceSettings.from_dict(written or {}, f"{path}: inference settings", num_classes)


def _written_metadata(path: str | Path) -> tuple[object, dict | str | None, dict | None]:
    """(model values, inference settings as written: the metadata's JSON string or the
    checkpoint's dict, the checkpoint or None for a weights file); parsed, not checked."""
    path = Path(path)
    if path.suffix == ".safetensors":
        metadata = _safetensors_metadata(path)
        if "anchordet_model" not in metadata:
            raise UserError(f"{path}: safetensors file without an anchordet model config; "
                            f"convert torchvision weights with `anchordet convert`")
        model = parse_json_field(metadata["anchordet_model"], str(path), "anchordet_model")
        return model, metadata.get(METADATA_KEY), None
    state = load_checkpoint(path)
    extra, model = state.get("extra"), state["config"].get("model")
    if isinstance(model, dict):  # how training ran and where it started: not part of the network
        model = {k: v for k, v in model.items() if k not in ("sync_batch_norm", "init_weights")}
    return model, extra.get("inference") if isinstance(extra, dict) else None, state


def _safetensors_metadata(path: Path) -> dict:
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # a truncated or damaged file: safetensors_rust.SafetensorError
        raise UserError(f"{path}: not a readable safetensors file, truncated or damaged ({exc})") from exc
    return metadata
