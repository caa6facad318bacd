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
              f"on {config.data.dataset}, {config.solver.epochs} epochs at batch {config.solver.batch_size}")
    return 0
