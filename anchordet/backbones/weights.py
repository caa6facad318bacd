"""Backbone weights: loading torchvision-layout state dicts strictly and without running pickles,
and finding torchvision's ImageNet weights in the torch hub cache (``backbone_weights="imagenet"``)."""
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


# torchvision's ImageNet backbones in the torch hub cache: what ``backbone_weights="imagenet"`` reads.
IMAGENET_WEIGHTS = {f"resnet{d}": f"ResNet{d}_Weights" for d in (18, 34, 50, 101, 152)}
IMAGENET_WEIGHTS.update(vgg16="VGG16_Weights", vgg16_bn="VGG16_BN_Weights")


def cached_weights_file(url: str, what: str, download: bool = True) -> Path:
    """The torch hub cache's copy of ``url`` (downloaded there first when possible).

    Raises:
        FileNotFoundError saying where to put the file when it is not cached and cannot be
        downloaded (no network).
    """
    from urllib.parse import urlparse

    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if path.is_file():
        return path
    reason = "downloading is off"
    if download:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=False)
            return path
        except Exception as exc:  # no network, proxy, disk: the message below says what to do
            reason = f"download failed: {type(exc).__name__}: {exc}"
    raise FileNotFoundError(
        f"{what}: {path.name} is not in the torch hub cache {path.parent} ({reason}). On a machine with network "
        f"access download {url} and copy it to {path} (or set TORCH_HOME), or pass the file's path instead "
        f"(e.g. --set model.backbone_weights=/path/to/{path.name})")


def imagenet_weights_file(arch: str, download: bool = True) -> Path:
    """torchvision's IMAGENET1K_V1 weights of ``arch`` ("resnet50", "vgg16", "vgg16_bn", ...)."""
    import torchvision.models

    if arch not in IMAGENET_WEIGHTS:
        raise ValueError(f"no torchvision ImageNet weights known for {arch!r}; known: {', '.join(IMAGENET_WEIGHTS)}")
    weights = getattr(torchvision.models, IMAGENET_WEIGHTS[arch]).IMAGENET1K_V1
    return cached_weights_file(weights.url, f"{IMAGENET_WEIGHTS[arch]}.IMAGENET1K_V1", download)


def resolve_backbone_weights(value: str | None, arch: str, download: bool = True) -> str | None:
    """A factory's ``backbone_weights`` option -> a file path or None.

    "imagenet": torchvision's ImageNet weights of ``arch`` from the torch hub cache;
    None / "none" / "": random initialisation; anything else: a path, returned as is.
    """
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    if str(value).strip().lower() == "imagenet":
        return str(imagenet_weights_file(arch, download))
    return str(value)
