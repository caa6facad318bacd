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


def add_procs_argument(parser: argparse.ArgumentParser, default: int | str) -> None:
    parser.add_argument("--procs", type=_procs, default=default, metavar="N",
                        help="train in N local processes joined by DistributedDataParallel (gloo on CPU, NCCL on "
                             "GPUs), the CPU cores shared out between them; 'auto': 2 on a CPU with 2 or more "
                             f"cores, else 1 (default {default})")


def _procs(value: str) -> int | str:
    """argparse type: 'auto' or an integer >= 1 (argparse names the option in its message)."""
    if value == "auto":
        return value
    try:
        return positive_int(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'auto', got {value!r}") from None


def resolve_procs(procs: int | str, device: str) -> int:
    """'auto' -> 2 processes on a CPU with at least 2 cores (small models train faster as two
    one-thread processes than as one two-thread process), else 1."""
    if procs != "auto":
        return int(procs)
    from anchordet.devices import cpu_count, resolve_device

    return 2 if resolve_device(device).type == "cpu" and cpu_count() >= 2 else 1


def load_config_or_fail(name: str, overrides: list[str]):
    from anchordet.config.load import load_config
    from anchordet.config.schema import ConfigError

    try:
        return load_config(name, overrides)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device_name, default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")


def device_name(value: str) -> str:
    """argparse type: auto, cpu, cuda or cuda:N."""
    from anchordet.config.schema import ConfigError, check_device

    try:
        return check_device(value, "--device")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--device: ")) from None


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1 (a batch size, a count)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {number}")
    return number


def score_threshold(value: str) -> float:
    """argparse type: a score in [0, 1] (NaN would silently keep nothing)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:  # False for NaN too
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value!r}")
    return number


def add_precision_argument(parser: argparse.ArgumentParser, default: str | None = "fp32") -> None:
    from anchordet.config.schema import PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default=default,
                        help="the network's arithmetic: fp32, bf16 autocast (CPUs with AVX512_BF16 / AMX, "
                             "GPUs) or fp16 autocast (GPUs); losses, box decoding and NMS stay fp32; falls back to "
                             "fp32 with one line where the device has no native support; auto: bf16 where "
                             "native, else fp32, silently"
                             + (f" (default {default})" if default else " (default: the config's run.precision)"))


def load_model_for_inference(weights: str, device: str):
    """(model in eval mode on ``device``, model config, ``InferenceSettings``, device) from a
    weights file (.safetensors) or a training checkpoint (.pt)."""
    from anchordet.devices import resolve_device
    from anchordet.weights_file import load_detector

    torch_device = resolve_device(device)
    model, read = load_detector(weights, torch_device)
    return model, read.model_config, read.inference, torch_device
