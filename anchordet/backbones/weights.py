"""Backbone weights: loading torchvision-layout state dicts strictly and without running pickles,
and finding torchvision's ImageNet weights in the torch hub cache (``backbone_weights="imagenet"``)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from anchordet.errors import UserError, torch_load_refusal


def load_torchvision_weights(model: nn.Module, state_dict_or_path: dict | str | Path,
                             ignore_prefixes: Sequence[str] = ("fc.",)) -> None:
    """Load a torchvision-layout state dict (or a ``.pth`` / ``.safetensors`` file) strictly.

    Raises:
        UserError (one line) naming the file and the first missing keys, unexpected keys and
        shape mismatches; nothing is loaded when anything does not match.
    """
    source = state_dict_or_path
    state = load_state_dict_file(source) if isinstance(source, (str, Path)) else source
    state = {k: v for k, v in state.items() if not k.startswith(tuple(ignore_prefixes)) and not k.endswith("num_batches_tracked")}
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    mismatch = state_dict_mismatch(own, state)
    if mismatch:
        name = f"{source}: " if isinstance(source, (str, Path)) else ""
        raise UserError(f"{name}weights do not fit {type(model).__name__}; nothing was loaded: {mismatch}")
    model.load_state_dict(state, strict=False)


def state_dict_mismatch(own: Mapping[str, Tensor], given: Mapping[str, Tensor], shown: int = 4) -> str | None:
    """None when ``given`` has exactly ``own``'s keys with the same shapes; else one line:
    "missing (N): a, b, ...; unexpected (M): ...; shape mismatch (L): key: file (..) vs model (..)"
    with the first ``shown`` of each, in the order of the state dicts (the first layers first)."""
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    mismatched = [f"{k}: file {tuple(given[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in given and tuple(given[k].shape) != tuple(own[k].shape)]
    parts = []
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            more = f", ... ({len(keys) - shown} more)" if len(keys) > shown else ""
            parts.append(f"{title} ({len(keys)}): {', '.join(keys[:shown])}{more}")
    return "; ".join(parts) or None


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read weights from ``.safetensors`` or a torch file, never executing pickled code.

    Raises:
        FileNotFoundError; UserError naming the file when it is damaged (truncated), not a
        weights file, or would run pickled code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses pickles that would run code; truncated zips fail too
        raise UserError(f"{path}: not a plain weights file, or damaged ({torch_load_refusal(exc)})") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict (names -> tensors), found {type(state).__name__}")
    return state


def read_safetensors(path: str | Path) -> dict[str, Tensor]:
    """All tensors of a ``.safetensors`` file; a truncated or damaged file is a UserError naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors_rust.SafetensorError and OSError for truncated files
        raise UserError(f"{path}: not a readable safetensors file, truncated or damaged ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
