"""``anchordet presets``: list the presets, or print one in full as YAML."""
from __future__ import annotations

import argparse

from anchordet.cli.main import UserError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("presets", help="list the configuration presets",
                                   description="List the presets; with a name, print that preset as YAML "
                                               "(a starting point for your own config file).")
    parser.add_argument("name", nargs="?", help="print this preset in full")
    return parser


def run(args) -> int:
    from anchordet.config.presets import PRESETS

    if args.name:
        if args.name not in PRESETS:
            raise UserError(f"unknown preset {args.name!r}; presets: {', '.join(PRESETS)}")
        print(PRESETS[args.name].to_yaml(), end="")
        return 0
    width = max(map(len, PRESETS))
    for name, config in PRESETS.items():
        model = config.model
        print(f"{name:<{width}}  {model.factory}({', '.join(f'{k}={v}' for k, v in list(model.args.items())[:2])}) "
              f"on {config.data.dataset} at {_input_size(config.data)}, {config.solver.epochs} epochs "
              f"at batch {config.solver.batch_size}; augment: {augmentations(config.data)}")
    return 0


def augmentations(data) -> str:
    """The training augmentations of a data section in words (docs/data.md)."""
    words = []
    if data.random_window:
        words.append(f"{data.random_window} px windows x{data.windows_per_image}")
    if data.train_transform == "ssd":
        words.append("ssd (colour, zoom out, IoU crop)")
    if data.scale_jitter != (1.0, 1.0):
        words.append(f"scale {data.scale_jitter[0]:g}-{data.scale_jitter[1]:g}")
    words += [name for name, on in (("hflip", data.hflip), ("vflip", data.vflip), ("rotate90", data.rotate90)) if on]
    if data.color_jitter:
        words.append(f"colour {data.color_jitter:g}")
    return ", ".join(words) or "none"


def _input_size(data) -> str:
    """The training input size in words: "300x300" (fixed) or "800-1333 px" (shorter-longer side)."""
    if data.train_transform == "resize":
        if len(data.min_sizes) > 1:
            return f"{min(data.min_sizes)}..{max(data.min_sizes)}-{data.max_size} px (multi-scale)"
        return f"{data.min_size} px" if data.min_size == data.max_size else f"{data.min_size}-{data.max_size} px"
    return f"{data.fixed_size}x{data.fixed_size}"
