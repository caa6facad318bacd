"""Loading backbone weights in torchvision's layout, strictly and without running pickles."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn


def load_torchvision_weights(model: nn.Module, state_dict_or_path: dict | str | Path,
                             ignore_prefixes: Sequence[str] = ("fc.",)) -> None:
    """Load a torchvision-layout state dict (or a ``.pth`` / ``.safetensors`` file) strictly.

    Raises:
        ValueError listing every missing key, unexpected key and shape mismatch; nothing is
        loaded when anything does not match.
    """
    state = load_state_dict_file(state_dict_or_path) if isinstance(state_dict_or_path, (str, Path)) else state_dict_or_path
    state = {k: v for k, v in state.items() if not k.startswith(tuple(ignore_prefixes)) and not k.endswith("num_batches_tracked")}
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                        for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(_mismatch_message(type(model).__name__, missing, unexpected, mismatched))
    model.load_state_dict(state, strict=False)


def _mismatch_message(name: str, missing: list[str], unexpected: list[str], mismatched: list[str]) -> str:
    lines = [f"weights do not fit {name}; nothing was loaded."]
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            shown = ", ".join(keys[:20]) + (f", ... ({len(keys) - 20} more)" if len(keys) > 20 else "")
            lines.append(f"  {title} ({len(keys)}): {shown}")
    return "\n".join(lines)


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read weights from ``.safetensors`` or a torch file, never executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses pickles that would run code
        raise ValueError(f"{path}: not a plain weights file ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state
