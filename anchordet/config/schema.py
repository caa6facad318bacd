"""Typed experiment configuration: four frozen dataclasses, YAML in and out, ``--set`` overrides.

``ExperimentConfig(model, data, solver, run)``. The model section names a factory function of
``anchordet.detectors`` (the explicit ``MODEL_FACTORIES`` table below) and holds that factory's
keyword arguments; they are checked against the factory's signature, so ``--set model.X=V`` is
typed by the factory's own annotations and a misspelt key is refused. Every other section is a
plain dataclass whose fields are the options.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import yaml

from anchordet.errors import UserError


class ConfigError(UserError):
    """A configuration the user wrote is wrong: printed as one line by the CLI (a ``UserError``)."""


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


@dataclass(frozen=True)
class DigitsOptions:
    """The built-in digits dataset (``anchordet.data.digits``). One dataclass for the config's
    ``data.digits``, ``DatasetSpec.digits``, ``DigitsDataset`` and a weights file's inference
    settings: nothing maps one spelling onto another.

    Attributes:
        num_train: train scenes per epoch (new scenes every epoch).
        num_val: val scenes (the fixed test split).
        canvas_size: side of the square scenes in pixels.
        digits_per_image: (min, max) digits per scene.
        digit_size: (min, max) side in pixels of the scaled 28x28 digit cell.
        seed: base seed of every scene.
        train_clutter: (min, max) shapes that are not digits (discs, rings, bars, frames) painted on
            each train scene before its digits, so that the detector learns that a round thing is
            not a 0 nor a straight one a 1. Test scenes have none.
        classes: the digits that appear, train and test (a subset for transfer experiments:
            (5, 6, 7, 8, 9)); label k is digit ``classes[k]``, named and with category id the
            digit. All ten draw exactly the scenes of the full dataset.
        fixed_train: the same ``num_train`` train scenes every epoch (a small fixed training set,
            as in a fine-tuning experiment) instead of new ones.
    """

    num_train: int = 2000
    num_val: int = 200
    canvas_size: int = 128
    digits_per_image: tuple[int, int] = (1, 4)
    digit_size: tuple[int, int] = (20, 56)
    seed: int = 0
    train_clutter: tuple[int, int] = (0, 4)
    classes: tuple[int, ...] = tuple(range(10))
    fixed_train: bool = False

    def __post_init__(self) -> None:
        classes = tuple(int(c) for c in self.classes)
        if not classes or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
            raise ConfigError(f"digits classes {list(self.classes)} must be distinct digits 0..9 (at least one)")
        object.__setattr__(self, "classes", classes)
        for name in ("digits_per_image", "digit_size", "train_clutter"):
            value = tuple(getattr(self, name))  # YAML gives lists
            if len(value) != 2:
                raise ConfigError(f"digits {name} {value} must be (min, max)")
            object.__setattr__(self, name, value)
        low, high = self.digit_size
        if not 8 <= low <= high <= self.canvas_size:
            raise ConfigError(f"digit_size {self.digit_size} must satisfy 8 <= min <= max <= canvas_size")
        if not 0 <= self.digits_per_image[0] <= self.digits_per_image[1]:
            raise ConfigError(f"digits_per_image {self.digits_per_image} must be (min, max) with 0 <= min <= max")
        if not 0 <= self.train_clutter[0] <= self.train_clutter[1]:
            raise ConfigError(f"train_clutter {self.train_clutter} must be (min, max) with 0 <= min <= max")
        if self.num_train < 0 or self.num_val < 0:
            raise ConfigError(f"digits num_train and num_val must be >= 0, got {self.num_train}, {self.num_val}")


@dataclass(frozen=True)
class DataConfig:
    """Attributes:
        dataset: "digits" (built-in, generated) or a dataset YAML (see docs/data.md).
        digits: the built-in dataset's options (``DigitsOptions``; YAML ``digits: {num_train: 500}``,
            ``--set data.digits.num_train=500``); used when ``dataset`` is "digits".
        train_transform: "resize" (keep ratio: min_size/max_size, random flip),
            "ssd" (SSD augmentation then a fixed size), or "fixed" (fixed size + flip).
        eval_transform: "resize" or "fixed" (no randomness).
        min_size, max_size: keep-ratio resize (shorter side to min_size, longer <= max_size).
            ``min_size`` may list several sizes: multi-scale training, one size drawn per batch
            (the same on every process, and again on resume); evaluation and the weights'
            inference settings use the largest (``eval_min_size``).
        fixed_size: the square input side of fixed-size models (SSD).
        aspect_ratio_groups: batches drawn from images of one aspect-ratio group (torchvision's
            GroupedBatchSampler idea; less padding): 2 splits at width = height (Detectron2), N
            groups split evenly in log2(width / height) between 1/2 and 2; 1 turns it off. Used
            with the keep-ratio resize on datasets of files (the digits scenes and fixed-size
            inputs are all square: one group, the batches of no grouping).
        num_workers: DataLoader worker processes per training process.
        skip_bad_annotations: drop (and report) bad boxes instead of stopping.
        vflip, rotate90, scale_jitter, color_jitter, random_window, windows_per_image: the
            large-image / overhead-imagery training options (``AugmentOptions``, docs/data.md).
    """

    dataset: str = "digits"
    digits: DigitsOptions = field(default_factory=DigitsOptions)
    train_transform: str = "resize"
    eval_transform: str = "resize"
    min_size: int | tuple[int, ...] = 800
    max_size: int = 1333
    fixed_size: int = 300
    hflip: bool = True
    aspect_ratio_groups: int = 2
    num_workers: int = 2
    skip_bad_annotations: bool = False
    # Large images and overhead imagery (issue 25): off by default; checked in check_augment_options.
    vflip: bool = False
    rotate90: bool = False
    scale_jitter: tuple[float, ...] = (1.0, 1.0)
    color_jitter: float = 0.0
    random_window: int = 0
    windows_per_image: int = 1

    def __post_init__(self) -> None:
        check_augment_options(self)
        _check_choice("data.train_transform", self.train_transform, ("resize", "ssd", "fixed"))
        _check_choice("data.eval_transform", self.eval_transform, ("resize", "fixed"))
        if self.scale_jitter != (1.0, 1.0) and self.train_transform != "resize":
            raise ConfigError(f"data.scale_jitter needs train_transform resize (a {self.train_transform!r} model "
                              f"takes one input size; 'ssd' has its own zoom)")
        if isinstance(self.min_size, (list, tuple)):
            object.__setattr__(self, "min_size", tuple(self.min_size))
        _check_sizes(self.min_sizes, self.max_size)
        _check_ranges("data", self, fixed_size=(1, None), num_workers=(0, None))
        if self.aspect_ratio_groups < 1:
            raise ConfigError(f"data.aspect_ratio_groups: must be >= 1 (1: no grouping), got {self.aspect_ratio_groups}")

    @property
    def min_sizes(self) -> tuple[int, ...]:
        """The training shorter sides (one entry without multi-scale)."""
        return self.min_size if isinstance(self.min_size, tuple) else (self.min_size,)

    @property
    def eval_min_size(self) -> int:
        """The one shorter side of evaluation and inference: the largest training size."""
        return max(self.min_sizes)


def check_augment_options(data) -> None:
    """The large-image options of a ``DataConfig`` (their meaning: docs/data.md, "Large images").

    vflip: mirror top-bottom with probability 0.5. rotate90: turn by 0, 90, 180 or 270 degrees
    (one drawn per image). scale_jitter (low, high): resize by a factor drawn uniformly from it
    after the resize step ((1, 1): off). color_jitter s: torchvision ColorJitter with brightness,
    contrast and saturation s and hue s / 4 (0: off). random_window S: train on an S x S window at
    a random place of each image, cut at the image's own resolution before the resize step (0:
    whole images); windows_per_image N: each image gives N windows per epoch.
    """
    scale = tuple(float(v) for v in data.scale_jitter)
    object.__setattr__(data, "scale_jitter", scale)
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] or not all(math.isfinite(v) for v in scale):
        raise ConfigError(f"data.scale_jitter: expected [low, high] with 0 < low <= high ([1, 1]: off), got {list(scale)}")
    if not (math.isfinite(data.color_jitter) and 0 <= data.color_jitter <= 1):
        raise ConfigError(f"data.color_jitter must be in [0, 1] (0: off), got {data.color_jitter!r}")
    if data.random_window < 0 or data.windows_per_image < 1:
        raise ConfigError(f"data.random_window must be >= 0 (0: whole images) and data.windows_per_image >= 1, "
                          f"got {data.random_window}, {data.windows_per_image}")
    if data.windows_per_image > 1 and not data.random_window:
        raise ConfigError("data.windows_per_image needs data.random_window (the window side in pixels)")


def _check_sizes(min_sizes: tuple, max_size: int) -> None:
    if not min_sizes or any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in min_sizes):
        raise ConfigError(f"data.min_size: expected a positive integer or a non-empty list of them, got "
                          f"{list(min_sizes) if len(min_sizes) != 1 else min_sizes[0]!r}")
    if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < max(min_sizes):
        raise ConfigError(f"data.max_size: must be an integer >= the largest data.min_size ({max(min_sizes)}), "
                          f"got {max_size!r}")


@dataclass(frozen=True)
class SolverConfig:
    """SGD with momentum; lr = base_lr * effective batch / base_batch_size (Goyal et al. 2017),
    where the effective batch is batch_size * accumulate_steps.

    Attributes:
        epochs: passes over the training set.
        batch_size: the global batch of one forward / backward pass (all processes together).
        accumulate_steps: gradient accumulation: add up the gradients of this many batches
            before each optimizer step (an effective batch of batch_size * accumulate_steps for
            the memory of batch_size). Warmup, schedule, ``run.stop_after_iters`` and the logged
            iterations count optimizer steps. Losses normalized by a per-batch count (RetinaNet
            and SSD: the positives) are normalized per accumulated batch, so the gradient equals
            that of the effective batch exactly when the counts are equal (the test), else
            closely.
        warmup_iters, warmup_factor: linear warmup from base_lr * warmup_factor.
        schedule: "step" (multiply by ``gamma`` at each epoch in ``steps``) or "cosine".
        clip_grad_norm: 0 disables clipping.
        optimizer: "sgd" (momentum; the papers' recipes) or "adamw" (converges faster from scratch,
            for small models without pretrained backbones; ``momentum`` is then beta1).
        ema_decay: keep an exponential moving average of the weights with this decay, in (0, 1)
            (``engine/ema.py``; e.g. 0.999); evaluation during training, best / last weights
            and predictions from checkpoints use the average. 0: off. The decay ramps up as
            (1 + t) / (10 + t) over the first optimizer steps t and is reached after
            9 d / (1 - d) of them (890 for 0.99).
    """

    epochs: int = 12
    batch_size: int = 16
    accumulate_steps: int = 1
    base_lr: float = 0.01
    base_batch_size: int = 16
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    schedule: str = "step"
    steps: tuple[int, ...] = (8, 11)
    gamma: float = 0.1
    clip_grad_norm: float = 0.0
    optimizer: str = "sgd"
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        _check_choice("solver.optimizer", self.optimizer, ("sgd", "adamw"))
        _check_choice("solver.schedule", self.schedule, ("step", "cosine"))
        if self.epochs < 1 or self.batch_size < 1 or self.base_batch_size < 1:
            raise ConfigError("solver.epochs, solver.batch_size and solver.base_batch_size must be >= 1")
        if not (math.isfinite(self.base_lr) and self.base_lr > 0):
            raise ConfigError(f"solver.base_lr must be a number > 0, got {self.base_lr}")
        _check_ranges("solver", self, momentum=(0, 1), weight_decay=(0, None), warmup_iters=(0, None),
                      warmup_factor=(0, 1), gamma=(0, None), clip_grad_norm=(0, None))
        if self.accumulate_steps < 1:
            raise ConfigError(f"solver.accumulate_steps: must be >= 1 (1: no accumulation), got {self.accumulate_steps}")
        if self.ema_decay != 0 and not 0 < self.ema_decay < 1:
            raise ConfigError(f"solver.ema_decay: must be in (0, 1), e.g. 0.999 (0 turns the average off), "
                              f"got {self.ema_decay}")

    @property
    def effective_batch_size(self) -> int:
        """Images per optimizer step: batch_size * accumulate_steps."""
        return self.batch_size * self.accumulate_steps

    @property
    def lr(self) -> float:
        return self.base_lr * self.effective_batch_size / self.base_batch_size


# run.precision's values (engine.precision resolves them; the CLI offers them)
PRECISIONS = ("fp32", "bf16", "fp16", "auto")


@dataclass(frozen=True)
class RunConfig:
    """Attributes:
        out_dir: where checkpoints, metrics and pictures go.
        seed: seeds the model initialisation, the data order and the augmentation.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        eval_every: evaluate on the val split every N epochs (0: only at the end).
        metric: "coco" or "voc07" / "voc" (selects the best checkpoint: AP or mAP).
        log_every: iterations between records in metrics.jsonl, and between progress lines when the
            output is not a terminal (anchordet.progress).
        channels_last: the channels_last memory format for the network: "auto" (where it was
            measured faster for the detector family, CPU and CUDA; ``engine.acceleration``),
            true or false.
        precision: "fp32", "bf16" (autocast around the network: CPU with AVX512_BF16 / AMX, or
            CUDA) or "fp16" (CUDA, with a grad scaler); losses, anchors, box coding, NMS and
            evaluation stay in fp32. Falls back to fp32 with one line where the device has no
            native support (``engine.precision``). "auto": bf16 where native, else fp32, silently
            (the digits presets).
        threads: torch CPU threads (0: torch's default).
        stop_after_iters: stop (with a checkpoint, resumable) after this many iterations of this
            run, as an interruption would; 0 runs to the end. For time-sliced / preemptible jobs.
        max_minutes: stop (with a checkpoint, resumable) after this wall-clock budget; 0: no limit.
        fit_epochs_to_budget: with ``max_minutes``, time the first training iterations and
            shorten ``solver.epochs`` to what fits the budget (never lengthen it), so the
            schedule runs to its end instead of being cut. The chosen count replaces
            ``solver.epochs`` (and this flag goes off) in config.yaml and the checkpoints: a
            resume continues the same schedule. ``anchordet demo`` uses it.
        patience: early stopping: end training (as finished, with the weights of the last
            epoch; best.safetensors holds the best) after this many evaluations in a row
            without a better ``metric`` headline (AP or mAP); 0: off. Needs ``eval_every``.
    """

    out_dir: str = "runs/exp"
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1
    metric: str = "coco"
    log_every: int = 20
    channels_last: bool | str = "auto"
    precision: str = "fp32"
    threads: int = 0
    stop_after_iters: int = 0
    max_minutes: float = 0.0
    fit_epochs_to_budget: bool = False
    patience: int = 0

    def __post_init__(self) -> None:
        _check_choice("run.metric", self.metric, ("coco", "voc07", "voc"))
        check_device(self.device, "run.device")
        _check_ranges("run", self, eval_every=(0, None), log_every=(1, None), threads=(0, None),
                      stop_after_iters=(0, None), max_minutes=(0, None))
        _check_choice("run.precision", self.precision, PRECISIONS)
        if self.channels_last not in (True, False, "auto"):
            raise ConfigError(f"run.channels_last: {self.channels_last!r} is not one of auto, true, false")
        if self.fit_epochs_to_budget and self.max_minutes <= 0:
            raise ConfigError("run.fit_epochs_to_budget needs a budget: set run.max_minutes > 0")
        if self.patience < 0:
            raise ConfigError(f"run.patience: must be >= 0 (0: no early stopping), got {self.patience}")
        if self.patience and self.eval_every < 1:
            raise ConfigError("run.patience counts evaluations: set run.eval_every >= 1 (it is 0: only at the end)")


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
            "data": _section_dict(self.data),
            "solver": _section_dict(self.solver),
            "run": _section_dict(self.run),
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


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(choices)}")


def check_device(name: str, where: str) -> str:
    """"auto", "cpu", "cuda" or "cuda:N"; anything else (``tpu``, ``gpu``) is a ConfigError."""
    if not (isinstance(name, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", name)):
        raise ConfigError(f"{where}: {name!r} is not a device; use auto, cpu, cuda or cuda:N")
    return name


def _check_ranges(section: str, values, **bounds: tuple[float, float | None]) -> None:
    """Each named field must be a finite number within [low, high] (high None: no limit)."""
    for name, (low, high) in bounds.items():
        value = getattr(values, name)
        if not (math.isfinite(value) and value >= low and (high is None or value <= high)):
            limit = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise ConfigError(f"{section}.{name} must be {limit}, got {value!r}")


def _section_dict(section) -> dict:
    return {f.name: _plain(getattr(section, f.name)) for f in dataclasses.fields(section)}


def _plain(value: Any) -> Any:
    """A field's value as YAML writes it: tuples as lists, nested dataclasses as mappings."""
    if dataclasses.is_dataclass(value):
        return _section_dict(value)
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


def check_model_args(factory: str, args: Mapping[str, Any], source: str = "config") -> None:
    """Every key must be a keyword of the factory, with a value of its annotated type."""
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


def _as_call_args(factory: str, args: Mapping[str, Any]) -> dict:
    hints = _option_hints(factory)[1]
    return {k: coerce(v, hints[k], f"model.{k}") if k in hints else v for k, v in args.items()}


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
