"""Typed experiment configuration: four frozen dataclasses, YAML in and out, ``--set`` overrides.

``ExperimentConfig(model, data, solver, run)``. The model section names a factory function of
``anchordet.detectors`` (the explicit ``MODEL_FACTORIES`` table below) and holds that factory's
keyword arguments; they are checked against the factory's signature, so ``--set model.X=V`` is
typed by the factory's own annotations and a misspelt key is refused. Every other section is a
plain dataclass whose fields are the options.

The sections live by what they hold: ``config.model`` (the model section and its checks),
``config.sections`` (data, solver, run), ``config.values`` (typed values, ``ConfigError``); this
module puts them together and is where callers import them from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from anchordet.config.model import (MAX_CLASSES, MODEL_FACTORIES, ModelConfig, check_model_args, model_factory,
                                    model_values, num_classes_ok)
from anchordet.config.sections import PRECISIONS, DataConfig, DigitsOptions, RunConfig, SolverConfig
from anchordet.config.values import ConfigError, check_device, coerce, section_dict, section_from_dict

__all__ = ["MAX_CLASSES", "MODEL_FACTORIES", "PRECISIONS", "ConfigError", "DataConfig", "DigitsOptions",
           "ExperimentConfig", "ModelConfig", "RunConfig", "SolverConfig", "apply_overrides", "check_device",
           "check_model_args", "coerce", "model_factory", "model_values", "num_classes_ok", "section_from_dict"]


@dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return {
            "model": {"factory": self.model.factory, **self.model.args,
                      **({"sync_batch_norm": True} if self.model.sync_batch_norm else {}),
                      **({"init_weights": self.model.init_weights} if self.model.init_weights else {})},
            "data": section_dict(self.data),
            "solver": section_dict(self.solver),
            "run": section_dict(self.run),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @staticmethod
    def from_dict(values: Mapping[str, Any], source: str = "config") -> "ExperimentConfig":
        unknown = set(values) - {"model", "data", "solver", "run"}
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}; expected model, data, solver, run")
        values = _translate_solver_amp(values)
        model_values = dict(values.get("model") or {})
        factory = model_values.pop("factory", ModelConfig.factory)
        sync_batch_norm = coerce(model_values.pop("sync_batch_norm", False), bool, f"{source}: model.sync_batch_norm")
        init_weights = coerce(model_values.pop("init_weights", None), str | None, f"{source}: model.init_weights")
        model_factory(factory)  # validates the name
        check_model_args(factory, model_values, source)
        return ExperimentConfig(
            ModelConfig(factory, model_values, sync_batch_norm, init_weights or None),
            section_from_dict(DataConfig, values.get("data") or {}, f"{source}: data"),
            section_from_dict(SolverConfig, values.get("solver") or {}, f"{source}: solver"),
            section_from_dict(RunConfig, values.get("run") or {}, f"{source}: run"),
        )


def _translate_solver_amp(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """Configs and checkpoints written before run.precision had solver.amp ("none", "bf16",
    "fp16", CUDA only): read it as run.precision ("none" is fp32)."""
    solver = values.get("solver")
    if not isinstance(solver, Mapping) or "amp" not in solver:
        return values
    solver = dict(solver)
    amp = solver.pop("amp")
    run = dict(values.get("run") or {})
    if amp != "none":
        run.setdefault("precision", amp)
    return {**values, "solver": solver, "run": run}


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply ``section.key=value`` strings; values are parsed as YAML (``0.02``, ``true``, ``[1, 2]``)."""
    values = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        path, raw = item.split("=", 1)
        parts = path.strip().split(".")
        if len(parts) < 2 or parts[0] not in values:
            raise ConfigError(f"--set {item!r}: the key must be section.key (section.key.field for a nested "
                              f"section such as data.digits) with section one of model, data, solver, run")
        target = _override_target(values, parts, item)
        try:
            parsed = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: cannot parse the value ({exc.problem})") from exc
        target[parts[-1]] = parsed
    return ExperimentConfig.from_dict(values, "--set")


def _override_target(values: dict, parts: list[str], item: str) -> dict:
    """The mapping of ``values`` that ``--set a.b[.c]=...`` writes into (model keys are checked
    later, against the factory)."""
    target, known = values[parts[0]], parts[0] != "model"
    for depth, key in enumerate(parts[1:], start=1):
        last = depth == len(parts) - 1
        if known and key not in target:
            raise ConfigError(f"--set {item!r}: unknown key {'.'.join(parts[:depth + 1])}; known: {', '.join(target)}")
        if last:
            return target
        if not isinstance(target.get(key), dict):
            raise ConfigError(f"--set {item!r}: {'.'.join(parts[:depth + 1])} has no fields")
        target = target[key]
    return target
