"""The model section of a config: ``ModelConfig`` (a detector factory and its keyword arguments),
the explicit table of factories, and the checks of those arguments against the factory's
signature (also what a weights file's ``anchordet_model`` metadata is checked with). Torch-free:
the factories are imported when a model is built or its options are checked."""
from __future__ import annotations

import inspect
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from anchordet.config.values import ConfigError, coerce
from anchordet.errors import UserError


# model.num_classes: no model here comes near (LVIS has 1203 classes, Objects365 365).
MAX_CLASSES = 100_000


def num_classes_ok(value: Any) -> bool:
    """``model.num_classes`` must be an integer in 1..MAX_CLASSES."""
    if isinstance(value, float) and value.is_integer():  # YAML 10.0, as ``coerce`` takes it
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CLASSES


# The detector factories a config can name: an explicit table, imported lazily so that the CLI
# reads and checks configs before it imports torch models.
MODEL_FACTORIES: dict[str, str] = {
    "retinanet_resnet_fpn": "anchordet.detectors.retinanet",
    "ssd_vgg16": "anchordet.detectors.ssd",
    "faster_rcnn_vgg16": "anchordet.detectors.faster_rcnn",
    "faster_rcnn_resnet_c4": "anchordet.detectors.faster_rcnn",
}


# Factories that take ``**options`` and pass them on: the function whose keywords those are.
FORWARDED_OPTIONS: dict[str, str] = {
    "faster_rcnn_vgg16": "assemble_faster_rcnn",
    "faster_rcnn_resnet_c4": "assemble_faster_rcnn",
}


def model_factory(name: str) -> Callable:
    if name not in MODEL_FACTORIES:
        raise ConfigError(f"model.factory: unknown factory {name!r}; choose one of {', '.join(MODEL_FACTORIES)}")
    import importlib

    return getattr(importlib.import_module(MODEL_FACTORIES[name]), name)


@dataclass(frozen=True)
class ModelConfig:
    """``factory``: a key of MODEL_FACTORIES; ``args``: its keyword arguments (num_classes
    included), as plain YAML values. Fields not given take the factory's defaults.

    ``sync_batch_norm`` (``model.sync_batch_norm`` in YAML, next to the factory's arguments but
    not one of them): under DDP, trainable BatchNorm layers use the statistics of the global
    batch (``engine/sync_bn.py``); with one process BatchNorm already sees the whole batch. The
    network and its weights are the same either way, so weights files do not record it.

    ``init_weights`` (``model.init_weights``, ``train --weights``; not a factory argument either): a
    new run starts from these weights (``anchordet.engine.init_weights``: an anchordet weights file
    or checkpoint, a torchvision RetinaNet / SSD300 state dict or weights name); None: the
    factory's initialisation. Weights files do not record it.
    """

    factory: str = "retinanet_resnet_fpn"
    args: Mapping[str, Any] = field(default_factory=dict)
    sync_batch_norm: bool = False
    init_weights: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", dict(self.args))

    def __hash__(self) -> int:  # frozen dataclass with a dict field
        return hash((self.factory, json.dumps(self.args, sort_keys=True, default=str), self.sync_batch_norm,
                     self.init_weights))

    @property
    def num_classes(self) -> int:
        return int(self.args["num_classes"])

    def build(self):
        """The detector, randomly initialised (backbone weights if ``backbone_weights`` is set)."""
        check_model_args(self.factory, self.args)
        try:
            return model_factory(self.factory)(**_as_call_args(self.factory, self.args))
        except UserError:
            raise
        except ValueError as exc:  # a factory's or a block's check of an option's value
            raise ConfigError(f"model ({self.factory}): {exc}") from exc


def _option_functions(factory: str) -> list[Callable]:
    functions = [model_factory(factory)]
    if factory in FORWARDED_OPTIONS:
        import importlib

        functions.append(getattr(importlib.import_module(MODEL_FACTORIES[factory]), FORWARDED_OPTIONS[factory]))
    return functions


def _option_hints(factory: str) -> tuple[list[str], dict[str, Any]]:
    """The keyword options a factory takes (its own and those it forwards) and their types."""
    known, hints = [], {}
    for function in _option_functions(factory):
        signature = inspect.signature(function)
        known += [n for n, p in signature.parameters.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in known]
        hints = {**typing.get_type_hints(function), **hints}
    return known, hints


def model_options(factory: str) -> list[str]:
    """The keyword options of ``factory`` (its own, then those it forwards), in signature order."""
    return _option_hints(factory)[0]


def model_option_defaults(factory: str) -> dict[str, Any]:
    """Each keyword option of ``factory`` (its own and those it forwards) that has a default -> it."""
    defaults = {}
    for function in _option_functions(factory):
        for name, parameter in inspect.signature(function).parameters.items():
            if parameter.default is not parameter.empty:
                defaults.setdefault(name, parameter.default)
    return defaults


def check_model_args(factory: str, args: Mapping[str, Any], source: str = "config") -> None:
    """Every key must be a keyword of the factory, with a value of its annotated type and in its
    range (``config.metadata.check_model_values``); the factory's options without a default
    (``depth``) must be given. Checked before a model is built: a weights file's metadata is input."""
    from anchordet.config.metadata import check_model_values

    known, hints = _option_hints(factory)
    for key, value in args.items():
        if key not in known:
            raise ConfigError(f"{source}: model.{key} is not an option of {factory}; known: {', '.join(known)}")
        if key in hints:
            coerce(value, hints[key], f"{source}: model.{key}")
    if "num_classes" not in args:
        raise ConfigError(f"{source}: model.num_classes is required")
    if not num_classes_ok(args["num_classes"]):
        raise ConfigError(f"{source}: model.num_classes must be an integer in 1..{MAX_CLASSES}, "
                          f"got {args['num_classes']!r}")
    missing = [name for name in _required_options(factory) if name not in args]
    if missing:
        raise ConfigError(f"{source}: model.{missing[0]} is required ({factory} has no default for it)")
    integers = {k for k, hint in hints.items() if "int" in str(hint) and "float" not in str(hint)}
    check_model_values(dict(args), source, integers)


def _required_options(factory: str) -> list[str]:
    """The factory's own keyword options without a default (those it forwards, the Faster R-CNN
    assembly's backbone and head, it fills in itself)."""
    parameters = inspect.signature(model_factory(factory)).parameters.values()
    return [p.name for p in parameters
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _as_call_args(factory: str, args: Mapping[str, Any]) -> dict:
    hints = _option_hints(factory)[1]
    return {k: coerce(v, hints[k], f"model.{k}") if k in hints else v for k, v in args.items()}


def model_values(value: Any, source: str) -> tuple[str, dict]:
    """(factory, arguments) from the parsed ``anchordet_model`` value, checked against the
    factory's signature and ``MAX_CLASSES`` (``check_model_args``)."""
    if not isinstance(value, dict):
        raise UserError(f"{source}: metadata anchordet_model must be a JSON object, got {type(value).__name__}")
    args = dict(value)
    factory = args.pop("factory", None)
    if not isinstance(factory, str):
        raise UserError(f"{source}: metadata anchordet_model has no 'factory' (the detector function's name)")
    try:
        model_factory(factory)
        check_model_args(factory, args, f"{source}: metadata anchordet_model")
    except ConfigError as exc:
        message = str(exc)
        raise UserError(message if message.startswith(source) else f"{source}: {message}") from None
    return factory, args
