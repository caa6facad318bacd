"""The data, solver and run sections of a config (frozen dataclasses; ``DigitsOptions`` is the
built-in dataset's nested section). Each checks its own values in ``__post_init__``."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from anchordet.config.values import ConfigError, check_choice, check_device, check_ranges


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
            large-image / overhead-imagery training options (``check_augment_options``, docs/data.md).
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
        check_choice("data.train_transform", self.train_transform, ("resize", "ssd", "fixed"))
        check_choice("data.eval_transform", self.eval_transform, ("resize", "fixed"))
        if self.scale_jitter != (1.0, 1.0) and self.train_transform != "resize":
            raise ConfigError(f"data.scale_jitter needs train_transform resize (a {self.train_transform!r} model "
                              f"takes one input size; 'ssd' has its own zoom)")
        if isinstance(self.min_size, (list, tuple)):
            object.__setattr__(self, "min_size", tuple(self.min_size))
        _check_sizes(self.min_sizes, self.max_size)
        check_ranges("data", self, fixed_size=(1, None), num_workers=(0, None))
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
        check_choice("solver.optimizer", self.optimizer, ("sgd", "adamw"))
        check_choice("solver.schedule", self.schedule, ("step", "cosine"))
        if self.epochs < 1 or self.batch_size < 1 or self.base_batch_size < 1:
            raise ConfigError("solver.epochs, solver.batch_size and solver.base_batch_size must be >= 1")
        if not (math.isfinite(self.base_lr) and self.base_lr > 0):
            raise ConfigError(f"solver.base_lr must be a number > 0, got {self.base_lr}")
        check_ranges("solver", self, momentum=(0, 1), weight_decay=(0, None), warmup_iters=(0, None),
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


# run.precision's values (runtime.precision resolves them; the CLI offers them)
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
            measured faster for the detector family, CPU and CUDA; ``runtime.acceleration``),
            true or false.
        precision: "fp32", "bf16" (autocast around the network: CPU with AVX512_BF16 / AMX, or
            CUDA) or "fp16" (CUDA, with a grad scaler); losses, anchors, box coding, NMS and
            evaluation stay in fp32. Falls back to fp32 with one line where the device has no
            native support (``runtime.precision``). "auto": bf16 where native, else fp32, silently
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
        check_choice("run.metric", self.metric, ("coco", "voc07", "voc"))
        check_device(self.device, "run.device")
        check_ranges("run", self, eval_every=(0, None), log_every=(1, None), threads=(0, None),
                      stop_after_iters=(0, None), max_minutes=(0, None))
        check_choice("run.precision", self.precision, PRECISIONS)
        if self.channels_last not in (True, False, "auto"):
            raise ConfigError(f"run.channels_last: {self.channels_last!r} is not one of auto, true, false")
        if self.fit_epochs_to_budget and self.max_minutes <= 0:
            raise ConfigError("run.fit_epochs_to_budget needs a budget: set run.max_minutes > 0")
        if self.patience < 0:
            raise ConfigError(f"run.patience: must be >= 0 (0: no early stopping), got {self.patience}")
        if self.patience and self.eval_every < 1:
            raise ConfigError("run.patience counts evaluations: set run.eval_every >= 1 (it is 0: only at the end)")
