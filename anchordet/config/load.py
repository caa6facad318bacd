"""``load_config``: a preset name or a YAML file, then ``--set`` overrides.

It sits above ``schema`` (the dataclasses) and ``presets`` (the PRESETS dict, written with
those dataclasses), so neither of the two imports the other's user.
"""
from __future__ import annotations

from pathlib import Path

from anchordet.config.presets import PRESETS
from anchordet.config.schema import ConfigError, ExperimentConfig, apply_overrides
from anchordet.files import load_yaml_file


def load_config(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """A preset name or a YAML file, then the overrides."""
    if name_or_path in PRESETS:
        config = PRESETS[name_or_path]
    else:
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml") and not path.exists():
            raise ConfigError(f"unknown preset {name_or_path!r} (and no such YAML file); "
                              f"presets: {', '.join(PRESETS)}")
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        values = load_yaml_file(path, ConfigError) or {}  # bounded: size, nesting, alias expansion
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping with sections model, data, solver, run")
        config = ExperimentConfig.from_dict(values, str(path))
    return apply_overrides(config, overrides or [])
