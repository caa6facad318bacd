"""Typed configuration values: ``ConfigError``, ``coerce`` (a YAML / ``--set`` value as an annotated
type), ``section_from_dict`` (a frozen dataclass from plain values) and the shared checks of the
config sections. Torch-free."""
from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import math
import re
import types
import typing
from typing import Any, Mapping

from anchordet.errors import UserError


class ConfigError(UserError):
    """A configuration the user wrote is wrong: printed as one line by the CLI (a ``UserError``)."""


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(choices)}")


def check_device(name: str, where: str) -> str:
    """"auto", "cpu", "cuda" or "cuda:N"; anything else (``tpu``, ``gpu``) is a ConfigError."""
    if not (isinstance(name, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", name)):
        raise ConfigError(f"{where}: {name!r} is not a device; use auto, cpu, cuda or cuda:N")
    return name


def check_ranges(section: str, values, **bounds: tuple[float, float | None]) -> None:
    """Each named field must be a finite number within [low, high] (high None: no limit)."""
    for name, (low, high) in bounds.items():
        value = getattr(values, name)
        if not (math.isfinite(value) and value >= low and (high is None or value <= high)):
            limit = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise ConfigError(f"{section}.{name} must be {limit}, got {value!r}")


def section_dict(section) -> dict:
    return {f.name: _plain(getattr(section, f.name)) for f in dataclasses.fields(section)}


def _plain(value: Any) -> Any:
    """A field's value as YAML writes it: tuples as lists, nested dataclasses as mappings."""
    if dataclasses.is_dataclass(value):
        return section_dict(value)
    return list(value) if isinstance(value, tuple) else value


def section_from_dict(cls, values: Mapping[str, Any], where: str):
    """The frozen dataclass ``cls`` from plain YAML / JSON ``values``, each coerced to its field's
    type; a ConfigError naming ``where`` and the key for an unknown key or a wrong value."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    converted = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**converted)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` (from YAML or ``--set``) as ``annotation``; ConfigError naming ``where`` if it is not one."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return value
    if dataclasses.is_dataclass(annotation):  # a nested section (data.digits)
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {annotation.__name__} fields, got {value!r}")
        return section_from_dict(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        for option in (a for a in arguments if a is not type(None)):
            try:
                return coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a {_type_name(annotation)}")
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list ({_type_name(annotation)}), got {value!r}")
        item_type = arguments[0] if arguments else Any
        return tuple(coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    return value


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
