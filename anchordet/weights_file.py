"""The one reader of weights files and training checkpoints: each file is read once, here.

A weights file (``.safetensors`` written by anchordet: a run's ``model.safetensors`` /
``best.safetensors``, ``anchordet convert``'s output) carries its model config and its
``InferenceSettings`` as JSON strings in the safetensors metadata (``MODEL_KEY``,
``INFERENCE_KEY``); a training checkpoint (``.pt``, ``engine.checkpoint.save_checkpoint``) carries
them as entries (``CHECKPOINT_MODEL``, ``CHECKPOINT_CONFIG`` -> "model", ``CHECKPOINT_EXTRA`` ->
``CHECKPOINT_INFERENCE``). ``read_weights`` turns either into a ``WeightsFile`` (model config,
inference settings, state dict), checked field by field (``config.metadata``); ``build_detector``
makes the model from it. ``predict``, ``evaluate``, ``export``, ``convert``, ``benchmark``,
``anchordet.load`` and fine-tuning (``engine.init_weights``) all go through here.

Loading never runs pickled code: ``torch.load(weights_only=True)`` and safetensors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from anchordet.config.inference import METADATA_KEY, InferenceSettings
from anchordet.config.metadata import MAX_PARAMETERS, parse_json_field
from anchordet.config.schema import ModelConfig, model_values
from anchordet.errors import UserError, torch_load_refusal
from anchordet.files import atomic_write

# safetensors metadata entries
MODEL_KEY = "anchordet_model"
INFERENCE_KEY = METADATA_KEY
# training checkpoint entries
CHECKPOINT_MODEL = "model"
CHECKPOINT_CONFIG = "config"
CHECKPOINT_EXTRA = "extra"
CHECKPOINT_EMA = "ema"
CHECKPOINT_INFERENCE = "inference"
# how a run trained and where it started: in a checkpoint's model section, not arguments of the network
RUN_ONLY_MODEL_OPTIONS = ("sync_batch_norm", "init_weights")


@dataclass(frozen=True)
class WeightsFile:
    """What one weights file or checkpoint holds, read and checked once.

    Attributes:
        path: the file.
        model_config: the detector's factory and arguments.
        inference: the eval resize, class names and category ids (unknown ones empty).
        state: the model's tensors by name (a checkpoint's weights average when it has one).
        checkpoint: the whole training checkpoint (``.pt``), None for a weights file.
    """

    path: Path
    model_config: ModelConfig
    inference: InferenceSettings
    state: dict[str, Tensor]
    checkpoint: dict | None = None


def read_weights(path: str | Path) -> WeightsFile:
    """Read an anchordet weights file or training checkpoint (see the module docstring).

    Raises:
        FileNotFoundError; UserError naming the file and the field for a damaged file, a file
        that would run pickled code, a plain state dict (no model config) or bad metadata.
    """
    found = read_weights_or_state_dict(path)
    if isinstance(found, WeightsFile):
        return found
    raise UserError(f"{path}: a state dict without an anchordet model config; "
                    f"convert torchvision weights with `anchordet convert`")


def read_weights_or_state_dict(path: str | Path) -> WeightsFile | dict[str, Tensor]:
    """``read_weights``, or the plain state dict of a file that has no anchordet model config (a
    torchvision ``.pth`` or ``.safetensors``): what fine-tuning accepts."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        metadata, state = _read_safetensors(path)
        if MODEL_KEY not in metadata:
            return state
        model = parse_json_field(metadata[MODEL_KEY], str(path), MODEL_KEY)
        return _weights_file(path, model, metadata.get(INFERENCE_KEY), state, None)
    checkpoint = read_torch_file(path)
    if not is_checkpoint(checkpoint):
        if isinstance(checkpoint, dict) and all(isinstance(v, Tensor) for v in checkpoint.values()):
            return checkpoint
        raise UserError(f"{path}: neither an anchordet checkpoint (no '{CHECKPOINT_MODEL}' and "
                        f"'{CHECKPOINT_CONFIG}' entries) nor a state dict; for a weights file use "
                        f".safetensors written by anchordet")
    model = checkpoint[CHECKPOINT_CONFIG].get("model")
    if isinstance(model, dict):
        model = {k: v for k, v in model.items() if k not in RUN_ONLY_MODEL_OPTIONS}
    extra = checkpoint.get(CHECKPOINT_EXTRA)
    inference = extra.get(CHECKPOINT_INFERENCE) if isinstance(extra, dict) else None
    ema = checkpoint.get(CHECKPOINT_EMA)
    state = ema["module"] if isinstance(ema, dict) and ema.get("module") else checkpoint[CHECKPOINT_MODEL]
    return _weights_file(path, model, inference, state, checkpoint)


def read_model_config(path: str | Path) -> ModelConfig:
    """The checked model config of a weights file or checkpoint."""
    return read_weights(path).model_config


def read_inference_settings(path: str | Path) -> InferenceSettings:
    """The checked ``InferenceSettings`` of a weights file or checkpoint."""
    return read_weights(path).inference


def is_checkpoint(value: object) -> bool:
    """Whether a ``torch.load`` result is an anchordet training checkpoint."""
    return (isinstance(value, dict) and isinstance(value.get(CHECKPOINT_MODEL), dict)
            and isinstance(value.get(CHECKPOINT_CONFIG), dict))


def read_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> object:
    """``torch.load(path, weights_only=True)``: a file that would run pickled code, or a damaged
    one, is a UserError naming it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # weights_only refuses pickles that would run code; truncated zips fail too
        raise UserError(f"{path}: refused to load: it is not a plain anchordet checkpoint or weights file, or it is "
                        f"damaged (anchordet never runs pickled code; {torch_load_refusal(exc)})") from exc


def build_detector(weights: WeightsFile, device: str | torch.device = "cpu") -> nn.Module:
    """The detector ``weights`` describes, its tensors loaded (strict), in eval mode on ``device``.

    The model is first built on the meta device (no memory) to refuse a config that would
    allocate more than ``MAX_PARAMETERS``. Its ``backbone_weights`` are not loaded (the file's
    weights replace them)."""
    config = weights.model_config
    build_config = ModelConfig(config.factory, {k: v for k, v in config.args.items() if k != "backbone_weights"})
    try:
        with torch.device("meta"):
            size = sum(t.numel() for t in build_config.build().state_dict().values())
    except UserError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError, ZeroDivisionError) as exc:
        # each field was checked (config.metadata.check_model_values); values that pass one by
        # one may still not make a network together (an SSD layer list that shrinks a map to 0)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(f"{weights.path}: its model config ({config.factory}) does not make a network "
                        f"({type(exc).__name__}: {reason})") from exc
    if size > MAX_PARAMETERS:
        raise UserError(f"{weights.path}: its model config ({config.factory}, num_classes {config.num_classes}) "
                        f"makes {size:,} parameters, more than the {MAX_PARAMETERS:,} any model here needs")
    model = build_config.build()
    load_model_state(model, weights.state, weights.path, f" its metadata describes ({config.factory})")
    return model.to(device).eval()


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, WeightsFile]:
    """(the detector in eval mode on ``device``, the ``WeightsFile`` it came from): one read."""
    weights = read_weights(path)
    return build_detector(weights, device), weights


def load_model_state(model: nn.Module, state: dict, path: str | Path, hint: str = "") -> None:
    """``model.load_state_dict(state)`` after checking every key and shape: a UserError naming
    ``path`` and the first mismatching tensors (plus ``hint``) instead of torch's traceback."""
    from anchordet.backbones.weights import state_dict_mismatch

    mismatch = state_dict_mismatch(model.state_dict(), state)
    if mismatch:
        raise UserError(f"{path}: the weights do not fit the model{hint}: {mismatch}")
    model.load_state_dict(state)


def save_weights(path: str | Path, model: nn.Module, model_config: ModelConfig, metadata: dict | None = None) -> Path:
    """The model's weights as safetensors, written atomically; the model config travels in the
    metadata (``MODEL_KEY``), with ``metadata`` (``InferenceSettings.to_metadata()``: ``INFERENCE_KEY``).
    Identical weights and settings give identical bytes (users compare weights files by checksum)."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    model_values_json = json.dumps({"factory": model_config.factory, **model_config.args}, sort_keys=True)
    info = {MODEL_KEY: model_values_json, **{k: str(v) for k, v in (metadata or {}).items()}}
    data = canonical_safetensors(save(tensors, metadata=info))
    return atomic_write(path, lambda f: f.write(data))


def canonical_safetensors(data: bytes) -> bytes:
    """A safetensors file with its JSON header rewritten with sorted keys: safetensors keeps the
    metadata in a Rust HashMap, whose order changes from one save to the next, so two runs that
    saved the same tensors wrote different bytes. The tensor data and the offsets into it are
    untouched; the header is padded with spaces to 8 bytes as safetensors pads it."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + length:]


def _weights_file(path: Path, model_values_written, inference_written, state, checkpoint) -> WeightsFile:
    factory, args = model_values(model_values_written, str(path))
    config = ModelConfig(factory, args)
    if isinstance(inference_written, str):  # a weights file's metadata entry
        inference = InferenceSettings.from_metadata({INFERENCE_KEY: inference_written}, str(path), config.num_classes)
    else:
        inference = InferenceSettings.from_dict(inference_written or {}, f"{path}: inference settings",
                                                config.num_classes)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path}: its model state is not a dict of tensors")
    return WeightsFile(path, config, inference, dict(state), checkpoint)


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, Tensor]]:
    """(metadata, tensors) from one open of the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # a truncated or damaged file: safetensors_rust.SafetensorError, OSError
        raise UserError(f"{path}: not a readable safetensors file, truncated or damaged ({exc})") from exc
    return metadata, state
