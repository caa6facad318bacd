"""Start a training run from pretrained detector weights (``model.init_weights``, ``train --weights``).

The source is an anchordet weights file (``.safetensors``) or training checkpoint (``.pt``), a
torchvision RetinaNet-R50-FPN / SSD300 state dict (``.pth``, read with ``weights_only=True``), or
a torchvision weights enum name (``RetinaNet_ResNet50_FPN_Weights.COCO_V1``, read from the torch
hub cache as the ImageNet backbones are); torchvision weights are converted with
``anchordet.interop.torchvision``.

Every tensor that is not class-specific must exist in the source with the same shape, and the
anchors must be the same: otherwise one error names the first mismatching tensors and nothing
is loaded. The class-specific tensors keep the rows of the classes whose names match between
the source and the new dataset; the rows of the other classes keep the new model's
initialisation (N(0, 0.01) and the focal-loss prior for RetinaNet). Which tensors those are and
their row layouts, the detector says (``Detector.class_layouts``, ``detectors.base.ClassLayout``).

The background rows are always carried over.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor, nn

from anchordet.config.model import model_option_defaults, model_options
from anchordet.config.schema import ModelConfig
from anchordet.detectors.base import ClassLayout, Detector
from anchordet.errors import UserError

PROBE_SIZE = (256, 256)  # input size at which the anchors of the two models are compared
# The architecture options a torchvision file determines: torchvision builds P6 from P5 (the
# paper and our presets from C5), and its head was trained on its own anchors (integer sizes, on
# cell corners, rounded base anchors). A run started from such a file takes them from the file
# (``fit_to_source``) and says so in its summary line.
FITTED_TO_TORCHVISION = ("p6_from", "anchor_sizes", "anchor_aspect_ratios", "anchor_offset", "anchor_round_base")
# Options that change neither the tensors nor the anchors: never part of a suggested --set.
NOT_ARCHITECTURE = ("num_classes", "backbone_weights", "pixel_mean", "pixel_std", "score_thresh", "nms_thresh",
                    "topk_candidates", "max_detections", "box_loss", "box_loss_beta", "frozen_bn", "trainable_layers",
                    "trainable_stages", "min_negatives", "neg_pos_ratio")


@dataclass
class SourceWeights:
    """A state dict in our layout, with what is known of the model that made it."""

    state: dict[str, Tensor]
    name: str
    config: ModelConfig | None = None
    class_names: list[str] | None = None
    model: nn.Module | None = None  # the converted model (torchvision sources)


@dataclass
class InitSummary:
    source: str
    loaded: int
    reinitialised: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)
    new_classes: list[str] = field(default_factory=list)
    fitted: list[str] = field(default_factory=list)  # "model.p6_from=p5": options taken from the weights

    def line(self) -> str:
        fitted = f"; fitted to the weights: {', '.join(self.fitted)}" if self.fitted else ""
        if not self.reinitialised:
            return f"init weights from {self.source}: {self.loaded} tensors loaded (all classes carried over){fitted}"
        carried = ", ".join(self.carried) if self.carried else "none"
        return (f"init weights from {self.source}: {self.loaded} tensors loaded, {len(self.reinitialised)} "
                f"class-specific re-initialised ({', '.join(self.reinitialised)}); classes carried over: "
                f"{carried} ({len(self.carried)} of {len(self.carried) + len(self.new_classes)}){fitted}")


def initialise_from(model: Detector, source: "str | Path | SourceWeights", class_names: list[str],
                    model_config: ModelConfig | None = None, fitted: list[str] | None = None) -> InitSummary:
    """Load ``source`` into ``model`` (in place) as described in the module docstring.

    Args:
        model: the freshly built detector of the new run (from ``fit_to_source``'s config when
            the source is a torchvision file).
        source: a file or weights name, or what ``read_source`` made of it.
        class_names: the new dataset's K class names.
        model_config: the new run's model config (named in messages; the ``--set`` that would
            make it fit is computed from it).
        fitted: ``fit_to_source``'s list, for the summary line.
    Raises:
        UserError naming the first mismatching tensors (nothing is loaded then).
    """
    weights = source if isinstance(source, SourceWeights) else read_source(source)
    layouts = model.class_layouts()
    own = model.state_dict()
    _check_architecture(weights, own, layouts, model, model_config)
    source_names = _source_class_names(weights, layouts)
    new_state, summary = _merge(weights, own, layouts, source_names, list(class_names))
    model.load_state_dict(new_state, strict=True)
    summary.fitted = list(fitted or [])
    return summary


def fit_to_source(model_config: ModelConfig, weights: "SourceWeights") -> tuple[ModelConfig, list[str]]:
    """``model_config`` with the architecture options a torchvision source determines
    (``FITTED_TO_TORCHVISION``) taken from it, and those changes as ``model.key=value`` strings
    (empty, and the config unchanged, for other sources or when nothing differs)."""
    if weights.model is None or weights.config is None or weights.config.factory != model_config.factory:
        return model_config, []
    defaults = model_option_defaults(model_config.factory)
    changes = {k: weights.config.args[k] for k in FITTED_TO_TORCHVISION if k in weights.config.args
               and _plain(weights.config.args[k]) != _plain(model_config.args.get(k, defaults.get(k)))}
    if not changes:
        return model_config, []
    fitted = dataclasses.replace(model_config, args={**model_config.args, **changes})
    return fitted, [f"model.{k}={_set_value(v)}" for k, v in changes.items()]


def fitting_sets(weights: "SourceWeights", model_config: ModelConfig | None) -> list[str]:
    """The fewest ``--set model.key=value`` (from the source's own model config) that make this
    model's tensors fit the source; empty when there is none (another factory, no config, or no
    choice of its options fits)."""
    if weights.config is None or model_config is None or weights.config.factory != model_config.factory:
        return []
    defaults = model_option_defaults(model_config.factory)
    theirs, ours = weights.config.args, model_config.args
    changes = {k: theirs.get(k, defaults.get(k)) for k in model_options(model_config.factory)
               if (k in theirs or k in ours) and k not in NOT_ARCHITECTURE
               and _plain(theirs.get(k, defaults.get(k))) != _plain(ours.get(k, defaults.get(k)))}
    if not changes or not _fits(weights, model_config, changes):
        return []
    for key in list(changes):  # drop every change the fit does not need
        fewer = {k: v for k, v in changes.items() if k != key}
        if _fits(weights, model_config, fewer):
            changes = fewer
    return [f"--set model.{k}={_set_value(v)}" for k, v in changes.items()]


def _fits(weights: "SourceWeights", model_config: ModelConfig, changes: dict) -> bool:
    """Whether the model of ``model_config`` changed by ``changes`` has the source's tensor
    shapes and anchors (built on the meta device: nothing is allocated)."""
    try:
        model = _build_on_meta(ModelConfig(model_config.factory, {**model_config.args, **changes}))
    except (UserError, ValueError, TypeError):
        return False
    own, layouts = model.state_dict(), model.class_layouts()
    plain = [k for k in own if k not in layouts and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights.state if k not in own and not k.endswith("num_batches_tracked")]
    shapes = not unexpected and all(k in weights.state and weights.state[k].shape == own[k].shape for k in plain)
    return shapes and _anchor_problem(weights, model) is None


def _plain(value):
    """Tuples as lists, all the way down (a YAML value and a factory default compare equal)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _set_value(value) -> str:
    """A value as ``--set`` reads it back (YAML)."""
    return value if isinstance(value, str) else json.dumps(_plain(value))


# ------------------------------------------------------------------------------------- sources
def read_source(source: str | Path) -> SourceWeights:
    """Read any supported source into our key layout (files through ``anchordet.weights_file``)."""
    from anchordet.weights_file import read_weights_or_state_dict

    text = str(source)
    path = Path(text)
    if path.is_file():
        found = read_weights_or_state_dict(path)
        if isinstance(found, dict):
            return _from_torchvision_state(found, str(path))
        names = found.inference.class_names
        return SourceWeights(found.state, str(path), found.model_config, list(names) if names else None)
    if "." in text and "/" not in text and text.split(".")[0].endswith("_Weights"):
        return _read_weights_enum(text)
    raise FileNotFoundError(f"init weights not found: {text} (give an anchordet .safetensors / .pt, a torchvision "
                            f".pth state dict, or a torchvision weights name such as "
                            f"RetinaNet_ResNet50_FPN_Weights.COCO_V1)")


def _from_torchvision_state(state: Mapping[str, Tensor], name: str) -> SourceWeights:
    from anchordet.interop.torchvision import _guess_arch, from_torchvision

    arch = _guess_arch(state)
    if arch not in ("retinanet_resnet50_fpn", "ssd300_vgg16"):
        what = f"torchvision {arch} weights" if arch else "a state dict of no known layout"
        raise UserError(f"{name}: {what}: --weights takes anchordet weights / checkpoints or torchvision "
                        f"retinanet_resnet50_fpn / ssd300_vgg16 state dicts")
    try:
        converted = from_torchvision(dict(state), arch)
    except ValueError as exc:
        raise UserError(f"{name}: {str(exc).splitlines()[0]} {' '.join(str(exc).splitlines()[1:3])}") from exc
    return _converted(converted, f"{name} (torchvision {arch})")


def _read_weights_enum(text: str) -> SourceWeights:
    import torchvision.models
    from anchordet.interop.torchvision import from_torchvision

    try:
        weights = torchvision.models.get_weight(text)
    except (ValueError, KeyError, AttributeError) as exc:
        raise UserError(f"{text}: not a torchvision weights name ({exc})") from exc
    try:
        converted = from_torchvision(weights)
    except ValueError as exc:
        raise UserError(f"{text}: {str(exc).splitlines()[0]}") from exc
    return _converted(converted, text)


def _converted(converted, name: str) -> SourceWeights:
    return SourceWeights(converted.model.state_dict(), name, converted.config, list(converted.class_names),
                         converted.model)


# ---------------------------------------------------------------------------------- class layers
def _source_class_names(weights: SourceWeights, layouts: dict[str, ClassLayout]) -> list[str]:
    """The source's K class names (from its file, else "0".."K-1" from its class-layer shape)."""
    key, layout = next(iter(layouts.items()))
    if key not in weights.state:
        raise UserError(f"{weights.name}: no {key}: not weights of this kind of detector")
    count = weights.state[key].shape[0] // (layout.groups * layout.per) - layout.extra
    if weights.config is not None and "num_classes" in weights.config.args:
        count = weights.config.num_classes
    names = weights.class_names if weights.class_names and len(weights.class_names) == count else None
    return names or [str(i) for i in range(count)]


# ------------------------------------------------------------------------------------- checks
def _check_architecture(weights: SourceWeights, own: Mapping[str, Tensor], layouts: dict[str, ClassLayout],
                        model: nn.Module, model_config: ModelConfig | None) -> None:
    src = weights.state
    plain = [k for k in own if k not in layouts and not k.endswith("num_batches_tracked")]
    missing = [k for k in plain if k not in src]
    mismatched = [f"{k} {tuple(src[k].shape)} in the weights vs {tuple(own[k].shape)} here"
                  for k in plain if k in src and src[k].shape != own[k].shape]
    ours = set(own)
    unexpected = [k for k in src if k not in ours and not k.endswith("num_batches_tracked")]
    problems = []
    if mismatched:
        anchors = any(k in m for m in mismatched for k in ("box_output", "head.regression", "rpn.head"))
        problems.append(f"shape mismatch ({len(mismatched)}): {'; '.join(mismatched[:3])}"
                        + (" (other anchors per location)" if anchors else ""))
    if missing:
        problems.append(f"missing from the weights ({len(missing)}): {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"not in this model ({len(unexpected)}): {', '.join(unexpected[:3])}")
    if not problems:
        for key, layout in layouts.items():
            problem = _class_layer_problem(key, layout, src, own, weights, layouts)
            if problem:
                problems.append(problem)
                break
    if not problems:
        problem = _anchor_problem(weights, model)
        if problem:
            problems.append(problem)
    if problems:
        target = f" ({model_config.factory})" if model_config is not None else ""
        source = f" ({weights.config.factory})" if weights.config is not None and weights.model is None else ""
        sets = fitting_sets(weights, model_config)
        fix = f" | it fits with {' '.join(sets)}" if sets else ""
        raise UserError(f"--weights {weights.name}{source} does not fit this model{target}; nothing was loaded: "
                        + " | ".join(problems) + fix)


def _class_layer_problem(key, layout: ClassLayout, src, own, weights, layouts) -> str | None:
    if key not in src:
        return f"missing from the weights: {key}"
    source_k = len(_source_class_names(weights, layouts))
    if src[key].shape[0] != layout.rows(source_k) or src[key].shape[1:] != own[key].shape[1:]:
        return (f"{key} {tuple(src[key].shape)} in the weights is not {layout.groups} anchors x "
                f"{source_k}{' + 1' if layout.extra else ''} classes of {tuple(own[key].shape[1:])} "
                f"(here {tuple(own[key].shape)}): other anchors per location")
    return None


def _anchor_problem(weights: SourceWeights, model: nn.Module) -> str | None:
    """Compare the anchors of the source's model and this one at ``PROBE_SIZE`` (SSD: its size)."""
    if weights.model is None and weights.config is None:
        return None  # a state dict alone says nothing about its anchors beyond the shapes checked
    source_model = weights.model if weights.model is not None else _build_on_meta(weights.config)
    mine, theirs = model.fixed_size, source_model.fixed_size
    if mine != theirs:
        return f"input size {theirs} in the weights vs {mine} here"
    size = (mine, mine) if mine else PROBE_SIZE
    a = source_model.training_anchors(size).boxes.float().cpu()
    b = model.training_anchors(size).boxes.float().cpu()
    if a.shape != b.shape:
        return f"other anchors: {a.shape[0]} anchors for a {size[0]}x{size[1]} input in the weights vs {b.shape[0]} here"
    differ = ((a - b).abs() > 1e-3).any(dim=1)
    if bool(differ.any()):
        i = int(differ.nonzero()[0])
        extra = _anchor_args_differ(weights.config, model)
        return (f"other anchors: anchor {i} is {[round(v, 2) for v in a[i].tolist()]} in the weights vs "
                f"{[round(v, 2) for v in b[i].tolist()]} here (input {size[0]}x{size[1]}){extra}")
    return None


def _anchor_args_differ(config: ModelConfig | None, model: nn.Module) -> str:
    if config is None:
        return ""
    keys = [k for k in config.args if "anchor" in k or k in ("min_sizes", "max_sizes", "steps", "aspect_ratios")]
    return f"; the weights' model sets {', '.join(f'{k}={config.args[k]}' for k in keys)}" if keys else ""


def _build_on_meta(config: ModelConfig) -> nn.Module:
    args = {k: v for k, v in config.args.items() if k != "backbone_weights"}  # no files for a shape-only model
    with torch.device("meta"):
        return ModelConfig(config.factory, args).build()


# ------------------------------------------------------------------------------------- merging
def _merge(weights: SourceWeights, own: Mapping[str, Tensor], layouts: dict[str, ClassLayout],
           source_names: list[str], target_names: list[str]) -> tuple[dict[str, Tensor], InitSummary]:
    src = weights.state
    same_classes = source_names == target_names
    carried = [n for n in target_names if n in source_names]
    state, loaded, reinitialised = {}, 0, []
    for key, value in own.items():
        if key not in layouts:
            if key in src:
                state[key] = src[key].to(value.dtype)
                loaded += 1
            else:  # num_batches_tracked absent from converted weights
                state[key] = value
            continue
        if same_classes:
            state[key] = src[key].to(value.dtype)
            loaded += 1
            continue
        state[key] = _carry_rows(value, src[key], layouts[key], source_names, target_names)
        reinitialised.append(key)
    summary = InitSummary(weights.name, loaded, reinitialised, [] if same_classes else carried,
                          [] if same_classes else [n for n in target_names if n not in source_names])
    if same_classes:
        summary.carried = list(target_names)
    return state, summary


def _carry_rows(fresh: Tensor, source: Tensor, layout: ClassLayout, source_names: list[str],
                target_names: list[str]) -> Tensor:
    """``fresh`` with the rows of classes named in both, and the background rows, from ``source``."""
    out = fresh.detach().clone()
    pairs = [(t, source_names.index(name)) for t, name in enumerate(target_names) if name in source_names]
    if layout.extra:
        pairs.append((len(target_names), len(source_names)))  # background
    for target_class, source_class in pairs:
        rows_out = layout.index(len(target_names), target_class)
        rows_in = layout.index(len(source_names), source_class)
        out[rows_out] = source[rows_in].to(out.dtype)
    return out
