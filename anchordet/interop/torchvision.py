"""Weights from and to torchvision's detection models, and torchvision's ImageNet backbones.

``from_torchvision`` builds our detector from a torchvision ``retinanet_resnet50_fpn`` (v1) or
``ssd300_vgg16``: a model, its weights enum (read from the torch hub cache), a state dict file
or a state dict (with ``arch`` named). ``to_torchvision`` (``interop.torchvision_models``) goes back. The conversion is a key
mapping (``_our_to_tv_key_*``) plus three value changes, all exact:

* labels: torchvision's logits are indexed by label (for the COCO models the COCO category id,
  0..90, with 0 and ten ids unused); ours are 0..K-1 (docs/design.md contract 3). ``labels`` (the
  torchvision label of each of our classes, default: the 80 COCO ids for 91 logits, else
  1..C-1) selects the class-logit channels. For SSD, torchvision's background logit 0 becomes
  our last logit K. Going back, unused channels get weight 0 and bias ``UNUSED_LOGIT_BIAS``, so
  they never score (sigmoid 4e-44) and do not change a softmax (exp(-100) relative).
  Dropping channels is exact for sigmoid scores. SSD's softmax then runs over fewer logits:
  each of our probabilities is torchvision's divided by (1 - the dropped labels' probability)
  (``Converted.dropped_softmax_labels``; tested exactly). That is nothing for torchvision's
  trained COCO SSD, whose 10 unused ids never fire, and zero both ways for models that came from
  anchordet; on untrained weights it raises every score by about 91 / 81 = 12%.
* frozen batch norm eps: ``retinanet_resnet50_fpn(weights=COCO_V1)`` sets eps 0 (torchvision's
  ``overwrite_eps``); our FrozenBatchNorm2d has 1e-5. Only ``running_var + eps`` is ever used,
  so ``running_var`` is moved by the difference.
* anchors: torchvision's integer sizes (``int(32 * 2 ** (1/3)) = 40``), corner-aligned grid
  (offset 0) and rounded base anchors: the converted config says so
  (``anchor_sizes``, ``anchor_offset=0``, ``anchor_round_base=True``); P6 comes from P5.

Where the two differ, by design (docs/export.md): torchvision resizes inside the model, pads
after normalising (ours pads with black before), and its P6/P7 anchor strides are
``padded_size // feature_size`` (ours: 64, 128). Detections are identical for inputs whose sides
are multiples of 128 (RetinaNet) or 300 x 300 (SSD) that torchvision's resize leaves unchanged.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from anchordet.backbones.weights import cached_weights_file
from anchordet.config.inference import InferenceSettings
from anchordet.config.schema import ModelConfig
from anchordet.errors import UserError

ARCHS = ("retinanet_resnet50_fpn", "ssd300_vgg16")
UNUSED_LOGIT_BIAS = -100.0
# torchvision's _default_anchorgen: int() truncates 32 * 2^(1/3) = 40.3 to 40, and so on.
TORCHVISION_RETINANET_ANCHOR_SIZES = tuple(
    tuple(float(int(x * 2 ** (k / 3.0))) for k in range(3)) for x in (32, 64, 128, 256, 512))
# torchvision's ssd300_vgg16 defaults: Caffe-style input, 0..255 pixels minus the mean.
TORCHVISION_SSD_MEAN = (0.48235, 0.45882, 0.40784)
TORCHVISION_SSD_STD = (1.0 / 255.0,) * 3
# What torchvision's own constructors use when nothing else is known (a state dict file).
TORCHVISION_DEFAULTS = {
    "retinanet_resnet50_fpn": dict(score_thresh=0.05, nms_thresh=0.5, detections_per_img=300, topk_candidates=1000,
                                   min_size=800, max_size=1333, image_mean=[0.485, 0.456, 0.406],
                                   image_std=[0.229, 0.224, 0.225], bn_eps=0.0),
    "ssd300_vgg16": dict(score_thresh=0.01, nms_thresh=0.45, detections_per_img=200, topk_candidates=400,
                         min_size=300, max_size=300, image_mean=list(TORCHVISION_SSD_MEAN),
                         image_std=list(TORCHVISION_SSD_STD), bn_eps=0.0),
}
# Unique key fragments to name the architecture of a state dict that was given for another.
_ARCH_SIGNS = {"retinanet_resnet50_fpn": "head.classification_head.cls_logits.weight",
               "ssd300_vgg16": "backbone.scale_weight", "fasterrcnn": "roi_heads.box_predictor.cls_score.weight"}


def coco_categories() -> tuple[list[int], list[str]]:
    """(the 80 COCO category ids, their names) as torchvision's 91-entry label list has them."""
    from torchvision.models._meta import _COCO_CATEGORIES

    used = [(i, name) for i, name in enumerate(_COCO_CATEGORIES) if name not in ("__background__", "N/A")]
    return [i for i, _ in used], [name for _, name in used]


class Converted(NamedTuple):
    """Our detector from torchvision weights.

    Attributes:
        model: the detector in eval mode.
        config: its ``ModelConfig`` (``config.build()`` makes the same architecture).
        category_ids: the torchvision label (COCO category id for COCO models) of each of our
            labels 0..K-1.
        class_names: K names.
        inference: its ``InferenceSettings``: torchvision's eval resize, the names and the ids.
        dropped_softmax_labels: SSD: the torchvision labels whose logits left the softmax
            (module docstring); empty for RetinaNet (sigmoid: dropping is exact).
    """

    model: nn.Module
    config: ModelConfig
    category_ids: list[int]
    class_names: list[str]
    inference: InferenceSettings
    dropped_softmax_labels: tuple[int, ...] = ()

    def metadata(self) -> dict[str, str]:
        """The ``save_weights`` metadata that lets ``anchordet predict`` write COCO ids."""
        return self.inference.to_metadata()


# ----------------------------------------------------------------------------------------------
# torchvision -> ours


def from_torchvision(source: Any, arch: str | None = None, *, labels: Sequence[int] | None = None,
                     class_names: Sequence[str] | None = None, bn_eps: float | None = None) -> Converted:
    """Our detector with the weights of a torchvision detection model.

    Args:
        source: a torchvision ``RetinaNet`` / ``SSD`` model, a weights enum member
            (``RetinaNet_ResNet50_FPN_Weights.COCO_V1``), a state dict, or a path to one.
        arch: "retinanet_resnet50_fpn" or "ssd300_vgg16"; needed for state dicts and paths.
        labels: the torchvision label of each of our classes 0..K-1 (see the module docstring).
        class_names: K names (default: COCO's for the 80 COCO ids, else "class_<label>").
        bn_eps: the eps of the source's frozen batch norms, for state dicts (default 0, what
            torchvision's COCO RetinaNet uses; 1e-5 for a model built without COCO weights).
    Raises:
        UserError listing the keys that do not match (nothing is converted then).
    """
    source_name, state, arch, settings, eps_of = _read_source(source, arch, bn_eps)
    num_tv_classes = _torchvision_classes(state, arch, settings, source_name)
    labels = _default_labels(num_tv_classes, labels, arch, source_name)
    class_names = _class_names(labels, class_names)
    config = _our_config(arch, state, settings, len(labels))
    model = config.build().eval()
    our_state = _map_state(source_name, state, model, arch, labels, num_tv_classes, eps_of)
    model.load_state_dict(our_state, strict=True)
    if arch == "ssd300_vgg16" and isinstance(source, nn.Module):
        _check_default_boxes(model, source)
    resize = (dict(eval_transform="resize", min_size=settings["min_size"], max_size=settings["max_size"])
              if arch == "retinanet_resnet50_fpn" else dict(eval_transform="fixed", fixed_size=300))
    inference = InferenceSettings(**resize, class_names=tuple(class_names), category_ids=tuple(labels))
    dropped = tuple(label for label in range(1, num_tv_classes) if label not in labels) if arch == "ssd300_vgg16" else ()
    return Converted(model, config, list(labels), class_names, inference, dropped)


def _read_source(source: Any, arch: str | None, bn_eps: float | None):
    """-> (name for messages, tv state dict, arch, settings, eps_of(tv module prefix))."""
    from torchvision.models import WeightsEnum

    if isinstance(source, nn.Module):
        arch = _arch_of_model(source)
        settings = _settings_of_model(source, arch)
        eps = {name: float(m.eps) for name, m in source.named_modules() if hasattr(m, "running_var")}
        return type(source).__name__, source.state_dict(), arch, settings, lambda prefix: eps.get(prefix, 1e-5)
    if isinstance(source, WeightsEnum):
        arch = {"RetinaNet_ResNet50_FPN_Weights": "retinanet_resnet50_fpn",
                "SSD300_VGG16_Weights": "ssd300_vgg16"}.get(type(source).__name__)
        if arch is None:
            raise UserError(f"{source}: only RetinaNet_ResNet50_FPN_Weights and SSD300_VGG16_Weights convert")
        source = cached_weights_file(source.url, f"{type(source).__name__}.{source.name}")
    if arch not in ARCHS:
        raise UserError(f"arch must be one of {', '.join(ARCHS)} for a state dict, got {arch!r}")
    settings = dict(TORCHVISION_DEFAULTS[arch])
    eps = settings.pop("bn_eps") if bn_eps is None else float(bn_eps)
    if isinstance(source, (str, Path)):
        from anchordet.backbones.weights import load_state_dict_file

        return str(source), load_state_dict_file(source), arch, settings, lambda prefix: eps
    if isinstance(source, Mapping):
        return "state dict", dict(source), arch, settings, lambda prefix: eps
    raise UserError(f"cannot convert a {type(source).__name__}: give a torchvision model, weights enum, "
                     "state dict or path")


def _arch_of_model(model: nn.Module) -> str:
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.models.detection.ssd import SSD

    if isinstance(model, RetinaNet):
        return "retinanet_resnet50_fpn"
    if isinstance(model, SSD):
        return "ssd300_vgg16"
    raise UserError(f"{type(model).__name__}: only torchvision RetinaNet (retinanet_resnet50_fpn) and SSD "
                     "(ssd300_vgg16) convert")


def _settings_of_model(model: nn.Module, arch: str) -> dict:
    transform = model.transform
    settings = dict(score_thresh=float(model.score_thresh), nms_thresh=float(model.nms_thresh),
                    detections_per_img=int(model.detections_per_img), topk_candidates=int(model.topk_candidates),
                    min_size=int(transform.min_size[-1]), max_size=int(transform.max_size),
                    image_mean=[float(v) for v in transform.image_mean],
                    image_std=[float(v) for v in transform.image_std])
    if arch == "ssd300_vgg16" and tuple(transform.fixed_size or ()) != (300, 300):
        raise UserError(f"torchvision SSD of size {transform.fixed_size}: only ssd300_vgg16 (300 x 300) converts")
    if arch == "retinanet_resnet50_fpn":
        generator = model.anchor_generator
        ratios = {tuple(float(r) for r in level) for level in generator.aspect_ratios}
        if len(ratios) != 1:
            raise UserError(f"anchor aspect ratios differ between levels ({sorted(ratios)}); ours are shared")
        settings.update(anchor_sizes=[[float(s) for s in level] for level in generator.sizes],
                        anchor_aspect_ratios=list(ratios.pop()))
    return settings


def _torchvision_classes(state: Mapping[str, Tensor], arch: str, settings: dict,
                         name: str) -> int:
    """C: torchvision's logits per anchor (checked against its anchors per location of each level)."""
    if arch == "retinanet_resnet50_fpn":
        sizes = settings.get("anchor_sizes", TORCHVISION_RETINANET_ANCHOR_SIZES)
        per_level = [len(sizes[0]) * len(settings.get("anchor_aspect_ratios", (0.5, 1.0, 2.0)))]
        keys = ["head.classification_head.cls_logits.weight"]
    else:
        per_level = [4, 6, 6, 6, 4, 4]  # torchvision's aspect ratios [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
        keys = [f"head.classification_head.module_list.{i}.weight" for i in range(6)]
    missing = [key for key in keys if key not in state]
    if missing:
        raise UserError(_mismatch_message(f"{name}: torchvision {arch}", missing, [], [], _guess_arch(state), arch))
    counts = [state[key].shape[0] / anchors for key, anchors in zip(keys, per_level)]
    if len(set(counts)) != 1 or not counts[0].is_integer():
        raise UserError(f"{name}: torchvision {arch}: class-logit layers {[tuple(state[k].shape) for k in keys]} "
                         f"do not fit {per_level} anchors per location")
    return int(counts[0])


def _default_labels(num_tv_classes: int, labels: Sequence[int] | None, arch: str, name: str) -> list[int]:
    if labels is None:
        # torchvision's num_classes counts the background (label 0); 91 is its COCO layout.
        labels = coco_categories()[0] if num_tv_classes == 91 else list(range(1, num_tv_classes))
    labels = [int(v) for v in labels]
    bad = [v for v in labels if not 0 <= v < num_tv_classes or (arch == "ssd300_vgg16" and v == 0)]
    if bad or len(set(labels)) != len(labels) or not labels:
        raise UserError(f"{name}: labels {labels} must be distinct torchvision labels in "
                         f"{'1' if arch == 'ssd300_vgg16' else '0'}..{num_tv_classes - 1} (bad: {bad})")
    return labels


def _class_names(labels: Sequence[int], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(labels):
            raise UserError(f"{len(names)} class names for {len(labels)} labels")
        return list(names)
    ids, coco_names = coco_categories()
    if list(labels) == ids:
        return coco_names
    return [f"class_{label}" for label in labels]


def _our_config(arch: str, state: Mapping[str, Tensor], settings: dict, num_classes: int) -> ModelConfig:
    post = dict(score_thresh=settings["score_thresh"], nms_thresh=settings["nms_thresh"],
                topk_candidates=settings["topk_candidates"], max_detections=settings["detections_per_img"])
    if arch == "retinanet_resnet50_fpn":
        channels = _fpn_channels(state)  # torchvision's head convs keep the FPN's width
        args = dict(depth=_resnet_depth(state), num_classes=num_classes, p6_from=_p6_from(state),
                    fpn_channels=channels, head_channels=channels,
                    anchor_sizes=[list(s) for s in settings.get("anchor_sizes", TORCHVISION_RETINANET_ANCHOR_SIZES)],
                    anchor_aspect_ratios=list(settings.get("anchor_aspect_ratios", (0.5, 1.0, 2.0))),
                    anchor_offset=0.0, anchor_round_base=True, box_loss="l1", **post)
        return ModelConfig("retinanet_resnet_fpn", {**args, "pixel_mean": settings["image_mean"],
                                                    "pixel_std": settings["image_std"]})
    args = dict(num_classes=num_classes, image_size=300, min_negatives=0, pixel_mean=settings["image_mean"],
                pixel_std=settings["image_std"], **post)
    return ModelConfig("ssd_vgg16", args)


def _resnet_depth(state: Mapping[str, Tensor]) -> int:
    """ResNet depth from the number of blocks per stage (He et al. 2016, Table 1)."""
    from anchordet.backbones.resnet import RESNET_SPECS, Bottleneck

    blocks = tuple(len({k.split(".")[3] for k in state if k.startswith(f"backbone.body.layer{i}.")}) for i in range(1, 5))
    bottleneck = any(".conv3." in k for k in state if k.startswith("backbone.body.layer"))
    for depth, (block, counts) in RESNET_SPECS.items():
        if counts == blocks and (block is Bottleneck) == bottleneck:
            return depth
    raise UserError(f"backbone.body: {blocks} blocks per stage is not a ResNet-18..152"
                     f"{'' if any(k.startswith('backbone.body.') for k in state) else ' (no backbone.body keys)'}")


def _fpn_channels(state: Mapping[str, Tensor]) -> int:
    lateral = state.get("backbone.fpn.inner_blocks.0.0.weight", state.get("backbone.fpn.inner_blocks.0.weight"))
    return 256 if lateral is None else int(lateral.shape[0])  # 256: let the key check report it missing


def _p6_from(state: Mapping[str, Tensor]) -> str:
    # torchvision's LastLevelP6P7 reads P5 when its input has the FPN's width, C5 otherwise.
    p6 = state.get("backbone.fpn.extra_blocks.p6.weight")
    lateral = state.get("backbone.fpn.inner_blocks.2.0.weight", state.get("backbone.fpn.inner_blocks.2.weight"))
    if p6 is None or lateral is None or p6.shape[1] == lateral.shape[0]:
        return "p5"
    return "c5"


# ----------------------------------------------------------------------------------------------
# key mapping (ours -> torchvision's current layout) and value changes

_RETINANET_KEYS: list[tuple[str, str | Callable]] = [
    (r"backbone\.(.+)", r"backbone.body.\1"),
    (r"fpn\.lateral\.(\d+)\.(.+)", r"backbone.fpn.inner_blocks.\1.0.\2"),
    (r"fpn\.output\.(\d+)\.(.+)", r"backbone.fpn.layer_blocks.\1.0.\2"),
    (r"fpn\.(p6|p7)\.(.+)", r"backbone.fpn.extra_blocks.\1.\2"),
    # Our subnets are Sequential(conv, relu, conv, ...): conv i sits at index 2i.
    (r"head\.cls_subnet\.(\d+)\.(.+)", lambda m: f"head.classification_head.conv.{int(m[1]) // 2}.0.{m[2]}"),
    (r"head\.cls_output\.(.+)", r"head.classification_head.cls_logits.\1"),
    (r"head\.box_subnet\.(\d+)\.(.+)", lambda m: f"head.regression_head.conv.{int(m[1]) // 2}.0.{m[2]}"),
    (r"head\.box_output\.(.+)", r"head.regression_head.bbox_reg.\1"),
]
_SSD_KEYS: list[tuple[str, str | Callable]] = [
    (r"backbone\.l2norm\.weight", "backbone.scale_weight"),
    (r"backbone\.(.+)", r"backbone.\1"),
    (r"head\.classification\.(\d+)\.(.+)", r"head.classification_head.module_list.\1.\2"),
    (r"head\.regression\.(\d+)\.(.+)", r"head.regression_head.module_list.\1.\2"),
]
# Older torchvision layouts, as its _load_from_state_dict hooks read them: RetinaNet heads before
# v2 ("conv.{2i}.weight") and FPN blocks before Conv2dNormActivation ("inner_blocks.{i}.weight").
_OLD_TV_KEYS: list[tuple[str, str | Callable]] = [
    (r"(head\.(?:classification|regression)_head\.conv)\.(\d+)\.(weight|bias)",
     lambda m: f"{m[1]}.{int(m[2]) // 2}.0.{m[3]}"),
    (r"(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.(weight|bias)", r"\1.0.\2"),
]


def _rename(key: str, rules: list[tuple[str, str | Callable]]) -> str | None:
    for pattern, replacement in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return replacement(match) if callable(replacement) else match.expand(replacement)
    return None


def _our_to_tv_key(arch: str, key: str) -> str | None:
    return _rename(key, _RETINANET_KEYS if arch == "retinanet_resnet50_fpn" else _SSD_KEYS)


def _select_classes(value: Tensor, anchors: int, channels: list[int]) -> Tensor:
    """(A * C_in, ...) -> (A * len(channels), ...): per anchor, the given logit channels."""
    per_anchor = value.reshape(anchors, -1, *value.shape[1:])  # (A, C_in, ...)
    return per_anchor[:, channels].reshape(-1, *value.shape[1:])


def _scatter_classes(value: Tensor, anchors: int, channels: list[int], num_out: int, is_bias: bool) -> Tensor:
    """(A * len(channels), ...) -> (A * num_out, ...); channels not written get weight 0 and
    bias UNUSED_LOGIT_BIAS."""
    per_anchor = value.reshape(anchors, len(channels), *value.shape[1:])
    out = value.new_full((anchors, num_out, *value.shape[1:]), UNUSED_LOGIT_BIAS if is_bias else 0.0)
    out[:, channels] = per_anchor
    return out.reshape(-1, *value.shape[1:])


def _tv_channels(arch: str, labels: list[int]) -> list[int]:
    """torchvision's logit channel of each of our logits (SSD: our background K is its 0)."""
    return list(labels) + ([0] if arch == "ssd300_vgg16" else [])


def _map_state(name: str, tv_state: Mapping[str, Tensor], model: nn.Module, arch: str, labels: list[int],
               num_tv_classes: int, eps_of: Callable[[str], float]) -> dict:
    """torchvision's state dict -> ours, all keys or nothing."""
    tv_state = {(_rename(k, _OLD_TV_KEYS) or k): v for k, v in tv_state.items()
                if not k.endswith("num_batches_tracked")}
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    modules = dict(model.named_modules())
    layouts = model.class_layouts()  # the class-logit layers: anchors per location x classes
    wanted = {k: _our_to_tv_key(arch, k) for k in own}
    missing = sorted(tv for tv in wanted.values() if tv not in tv_state)
    unexpected = sorted(set(tv_state) - set(wanted.values()))
    out, mismatched = {}, []
    for ours, tv in wanted.items():
        if tv not in tv_state:
            continue
        value = tv_state[tv].detach().clone()
        layout = layouts.get(ours)
        if layout is not None and value.shape[0] == layout.groups * num_tv_classes:
            value = _select_classes(value, layout.groups, _tv_channels(arch, labels))
        if ours.endswith(".running_var"):
            # Only running_var + eps is used: keep the sum when the eps differ.
            value = value + eps_of(tv[: -len(".running_var")]) - modules[ours[: -len(".running_var")]].eps
        if value.shape != own[ours].shape:
            mismatched.append(f"{tv}: {tuple(tv_state[tv].shape)} vs {tuple(own[ours].shape)} ({ours})")
        out[ours] = value
    if missing or unexpected or mismatched:
        raise UserError(_mismatch_message(f"{name}: torchvision {arch}", missing, unexpected, mismatched,
                                           _guess_arch(tv_state), arch))
    return out


def _guess_arch(state: Mapping[str, Tensor]) -> str | None:
    return next((arch for arch, key in _ARCH_SIGNS.items() if key in state), None)


def _mismatch_message(what: str, missing: list[str], unexpected: list[str], mismatched: list[str],
                      guess: str | None = None, arch: str | None = None, shown: int = 4) -> str:
    """One line: what does not match (the first ``shown`` keys of each kind) and a guess of the arch."""
    parts = []
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            more = f", ... ({len(keys) - shown} more)" if len(keys) > shown else ""
            parts.append(f"{title} ({len(keys)}): {', '.join(keys[:shown])}{more}")
    if guess and guess != arch:
        parts.append(f"these look like {guess} weights" + (f" (arch={guess!r})" if guess in ARCHS else ""))
    return f"{what}: the weights do not match; nothing was converted: " + "; ".join(parts)


def _check_default_boxes(ours: nn.Module, tv: nn.Module) -> None:
    """Our SSD300's default boxes must be torchvision's, up to float32 rounding (<= 1 ulp, 3e-5 px)."""
    sides = ours.backbone.feature_sizes(300)
    mine = torch.cat(ours.default_boxes.default_boxes([(s, s) for s in sides], (300, 300)))
    theirs = _tv_default_boxes(tv)
    if mine.shape != theirs.shape or not torch.allclose(mine, theirs, atol=1e-3):
        raise UserError("the SSD default boxes differ between torchvision's model and ours (ssd300_vgg16's "
                         "steps, scales and aspect ratios are needed)")


def _tv_default_boxes(tv: nn.Module) -> Tensor:
    """(8732, 4) xyxy default boxes of a torchvision SSD300 for a 300 x 300 input."""
    from torchvision.models.detection.image_list import ImageList

    images = ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)])
    sides = (38, 19, 10, 5, 3, 1)  # torchvision's SSD300 source maps
    return tv.anchor_generator(images, [torch.zeros(1, 1, s, s) for s in sides])[0]
