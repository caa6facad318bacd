"""Arguments and helpers shared by the training-side subcommands."""
from __future__ import annotations

import argparse

from anchordet.cli.main import UserError


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", "-c", required=required, metavar="PRESET_OR_YAML",
                        help="a preset name (see `anchordet presets`) or a YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set solver.epochs=3 --set model.num_classes=5 "
                             "(values are YAML: 0.01, true, [16, 32]); repeatable")


def load_config_or_fail(name: str, overrides: list[str]):
    from anchordet.config.schema import ConfigError, load_config

    try:
        return load_config(name, overrides)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")


def load_model_for_inference(weights: str, device: str):
    """(model in eval mode on ``device``, model config, inference settings) from a weights file
    (.safetensors) or a training checkpoint (.pt)."""
    from anchordet.engine.checkpoint import load_detector, read_inference_settings
    from anchordet.engine.trainer import resolve_device

    torch_device = resolve_device(device)
    model, model_config = load_detector(weights, torch_device)
    return model, model_config, read_inference_settings(weights), torch_device


def eval_transform_from_settings(settings: dict, overrides: dict | None = None):
    """The deterministic resize the model was evaluated with (none if the weights do not say)."""
    from anchordet.data import transforms as T

    settings = {**settings, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    kind = settings.get("eval_transform")
    if kind == "resize":
        return T.ResizeKeepRatio(int(settings["min_size"]), int(settings["max_size"]))
    if kind == "fixed":
        return T.Resize((int(settings["fixed_size"]), int(settings["fixed_size"])))
    return None
