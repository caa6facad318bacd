"""Joint image + target transforms.

Each transform is a callable ``(image (3, H, W) float in [0, 1], targets) -> (image, targets)``
with boxes in the pixels of the returned image. After every geometric transform boxes are
clipped to the image and boxes left empty are dropped with their labels and ignore flags.
Random transforms draw from torch's global RNG, so ``torch.manual_seed`` reproduces them and
DataLoader workers (seeded by PyTorch per worker) draw different numbers.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from anchordet.config.inference import InferenceSettings
from anchordet.config.schema import DataConfig
from anchordet.structures.boxes import box_iou, clip_boxes, nonempty_mask
from anchordet.structures.image_batch import IMAGENET_MEAN
from anchordet.structures.targets import Targets

Transform = Callable[[Tensor, Targets], "tuple[Tensor, Targets]"]


def clip_and_drop(image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
    """Clip boxes to the image; drop boxes with no width or height."""
    boxes = clip_boxes(targets.boxes, (int(image.shape[-2]), int(image.shape[-1])))
    return image, targets.with_boxes(boxes).select(nonempty_mask(boxes))


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _chance(p: float) -> bool:
    return float(torch.rand(())) < p


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        for transform in self.transforms:
            image, targets = transform(image, targets)
        return image, targets

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def resize_image_and_boxes(image: Tensor, targets: Targets, size: tuple[int, int]) -> tuple[Tensor, Targets]:
    """Resize to ``size`` (height, width); boxes scale by the exact per-axis ratios.

    Bilinear with ``align_corners=False`` maps pixel edges to pixel edges, so a box edge at x
    goes to x * new_w / w. Antialiasing when shrinking (torchvision's default too).
    """
    height, width = int(image.shape[-2]), int(image.shape[-1])
    new_h, new_w = size
    if (new_h, new_w) != (height, width):
        image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", align_corners=False,
                              antialias=new_h < height or new_w < width)[0].clamp(0, 1)
    return clip_and_drop(image, targets.with_boxes(scale_boxes(targets.boxes, (height, width), (new_h, new_w))))


def scale_boxes(boxes: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """Boxes (N, 4) xyxy of an image of ``from_size`` (h, w) in the pixels of the same image
    resized to ``to_size``: exact per-axis ratios (no clipping)."""
    (height, width), (new_h, new_w) = from_size, to_size
    scale = torch.tensor([new_w / width, new_h / height, new_w / width, new_h / height], dtype=boxes.dtype)
    return boxes * scale


def keep_ratio_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """Shorter side to ``min_size`` unless the longer side would pass ``max_size`` (then the
    longer side is ``max_size``): Detectron's / torchvision's GeneralizedRCNNTransform rule."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


class ResizeKeepRatio:
    """Resize keeping the aspect ratio (``keep_ratio_size``).

    Args:
        min_size: target shorter side, or several: one is drawn per image (multi-scale training),
            unless ``batch_min_size`` is set.
        max_size: cap on the longer side.

    Attributes:
        batch_min_size: when not None, the shorter side to use instead of a draw. The trainer's
            dataset wrapper (``engine.data.SeededItems``) sets it before loading each item of a
            batch to that batch's size, so that a batch is one size (less padding) and the
            size does not depend on which worker or process loads the item.
    """

    def __init__(self, min_size: int | Sequence[int], max_size: int):
        self.min_sizes = [min_size] if isinstance(min_size, int) else list(min_size)
        if not self.min_sizes or min(self.min_sizes) <= 0 or max_size < max(self.min_sizes):
            raise ValueError(f"ResizeKeepRatio: need 0 < min_size <= max_size, got {min_size}, {max_size}")
        self.max_size = max_size
        self.batch_min_size: int | None = None

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        if self.batch_min_size is not None:
            min_size = self.batch_min_size
        elif len(self.min_sizes) > 1:
            min_size = self.min_sizes[int(torch.randint(len(self.min_sizes), ()))]
        else:
            min_size = self.min_sizes[0]
        size = keep_ratio_size(int(image.shape[-2]), int(image.shape[-1]), min_size, self.max_size)
        return resize_image_and_boxes(image, targets, size)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an image of (height, width) is resized to, for a single ``min_size`` (a
        multi-scale resize draws one per image)."""
        if len(self.min_sizes) != 1:
            raise ValueError(f"{self!r} draws its shorter side per image: no single output size")
        return keep_ratio_size(height, width, self.min_sizes[0], self.max_size)

    def __repr__(self) -> str:
        return f"ResizeKeepRatio({self.min_sizes}, {self.max_size})"


class Resize:
    """Resize to a fixed (height, width), ignoring the aspect ratio (SSD)."""

    def __init__(self, size: int | tuple[int, int]):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if min(self.size) <= 0:
            raise ValueError(f"Resize: size must be positive, got {size}")

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        return resize_image_and_boxes(image, targets, self.size)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.size

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``: x1' = W - x2, x2' = W - x1."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        if not _chance(self.p):
            return image, targets
        width = image.shape[-1]
        boxes = targets.boxes
        flipped = torch.stack((width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]), dim=1)
        return clip_and_drop(image.flip(-1), targets.with_boxes(flipped))


class PhotometricDistort:
    """SSD's colour augmentation (Liu et al. 2016, Sec. 3.6; ssd.pytorch's PhotometricDistort),
    with torchvision's float-image colour functions. Each step happens with probability ``p``:
    brightness, then contrast before or after (coin flip) saturation and hue, then a random
    channel permutation. Ranges from torchvision's RandomPhotometricDistort. Boxes unchanged.
    """

    def __init__(self, brightness=(0.875, 1.125), contrast=(0.5, 1.5), saturation=(0.5, 1.5), hue=(-0.05, 0.05),
                 p: float = 0.5):
        self.brightness, self.contrast, self.saturation, self.hue, self.p = brightness, contrast, saturation, hue, p

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        if _chance(self.p):
            image = TF.adjust_brightness(image, _uniform(*self.brightness))
        contrast_first = _chance(0.5)
        if contrast_first and _chance(self.p):
            image = TF.adjust_contrast(image, _uniform(*self.contrast))
        if _chance(self.p):
            image = TF.adjust_saturation(image, _uniform(*self.saturation))
        if _chance(self.p):
            image = TF.adjust_hue(image, _uniform(*self.hue))
        if not contrast_first and _chance(self.p):
            image = TF.adjust_contrast(image, _uniform(*self.contrast))
        if _chance(self.p):
            image = image[torch.randperm(3)]
        return image.clamp(0, 1), targets

    def __repr__(self) -> str:
        return f"PhotometricDistort(p={self.p})"


class RandomExpand:
    """SSD's zoom out (Liu et al. 2016, Sec. 3.6): with probability ``p`` place the image at a
    random spot of a canvas ``ratio`` times larger (ratio uniform in [1, max_ratio]) filled with
    ``fill`` (the mean colour, which normalizes to 0). Makes objects smaller."""

    def __init__(self, max_ratio: float = 4.0, fill: Sequence[float] = IMAGENET_MEAN, p: float = 0.5):
        if max_ratio < 1:
            raise ValueError(f"RandomExpand: max_ratio must be >= 1, got {max_ratio}")
        self.max_ratio, self.fill, self.p = max_ratio, tuple(fill), p

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        if not _chance(self.p):
            return image, targets
        _, height, width = image.shape
        ratio = _uniform(1.0, self.max_ratio)
        new_h, new_w = int(height * ratio), int(width * ratio)
        top = int(torch.randint(new_h - height + 1, ()))
        left = int(torch.randint(new_w - width + 1, ()))
        canvas = torch.tensor(self.fill, dtype=image.dtype).view(3, 1, 1).expand(3, new_h, new_w).clone()
        canvas[:, top:top + height, left:left + width] = image
        shift = torch.tensor([left, top, left, top], dtype=targets.boxes.dtype)
        return clip_and_drop(canvas, targets.with_boxes(targets.boxes + shift))


class RandomIoUCrop:
    """SSD's IoU-constrained random crop (Liu et al. 2016, Sec. 3.6).

    Per image, draw an option: ``None`` keeps the whole image; 0.0 is a free random patch; 0.1,
    0.3, 0.5, 0.7 or 0.9 need a patch whose IoU with at least one (non-ignored) object reaches
    it, as Caffe SSD's SatisfySampleConstraint. A patch has sides in [min_scale, 1] of the
    image's and aspect ratio w/h in ``aspect_range``; objects whose centres fall inside it are
    kept (clipped), the others dropped, and a patch that keeps no object is rejected. After
    ``trials`` rejections another option is drawn; after ``max_options`` the image is returned
    unchanged. (ssd.pytorch's ``overlap.min() < min_iou and max_iou < overlap.max()`` test is
    always false with max_iou = inf, so its constraint never applies; not copied.)
    """

    OPTIONS = (None, 0.0, 0.1, 0.3, 0.5, 0.7, 0.9)

    def __init__(self, min_scale: float = 0.3, aspect_range: tuple[float, float] = (0.5, 2.0), trials: int = 50,
                 max_options: int = 20):
        self.min_scale, self.aspect_range, self.trials, self.max_options = min_scale, aspect_range, trials, max_options

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        _, height, width = image.shape
        for _ in range(self.max_options):
            min_iou = self.OPTIONS[int(torch.randint(len(self.OPTIONS), ()))]
            if min_iou is None:
                return image, targets
            for _ in range(self.trials):
                crop = self._sample_patch(height, width)
                kept = None if crop is None else self._accept(crop, targets, min_iou)
                if kept is not None:
                    left, top, right, bottom = crop
                    shift = torch.tensor([left, top, left, top], dtype=targets.boxes.dtype)
                    cropped = image[:, top:bottom, left:right]
                    return clip_and_drop(cropped, targets.select(kept).with_boxes(targets.boxes[kept] - shift))
        return image, targets

    def _sample_patch(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) integer pixel edges of a random patch, or None if its
        aspect ratio is outside the range (that counts as a failed trial)."""
        new_w = _uniform(self.min_scale, 1.0) * width
        new_h = _uniform(self.min_scale, 1.0) * height
        if not self.aspect_range[0] <= new_w / new_h <= self.aspect_range[1]:
            return None
        new_w, new_h = max(1, int(new_w)), max(1, int(new_h))
        left = int(torch.randint(width - new_w + 1, ()))
        top = int(torch.randint(height - new_h + 1, ()))
        return left, top, left + new_w, top + new_h

    @staticmethod
    def _accept(crop: tuple[int, int, int, int], targets: Targets, min_iou: float) -> Tensor | None:
        """Bool mask of the kept objects, or None if the patch breaks the constraint."""
        centres = (targets.boxes[:, :2] + targets.boxes[:, 2:]) / 2
        kept = ((centres[:, 0] > crop[0]) & (centres[:, 0] < crop[2]) & (centres[:, 1] > crop[1])
                & (centres[:, 1] < crop[3]))
        trainable = ~targets.ignore
        if not bool(trainable.any()):
            return kept  # no object to satisfy: any patch (ignore regions follow their centres)
        patch = torch.tensor([crop], dtype=targets.boxes.dtype)
        if min_iou > 0 and not bool((box_iou(patch, targets.boxes[trainable]) >= min_iou).any()):
            return None
        return kept if bool((kept & trainable).any()) else None


class SSDAugmentation(Compose):
    """The SSD training pipeline: photometric distortion, zoom out, IoU crop, flip (unless
    ``hflip=False``: digits, text), then a fixed ``Resize((size, size))`` (Liu et al. 2016, Sec. 3.6)."""

    def __init__(self, size: int = 300, fill: Sequence[float] = IMAGENET_MEAN, hflip: bool = True):
        flip = [RandomHorizontalFlip(0.5)] if hflip else []
        super().__init__([PhotometricDistort(), RandomExpand(4.0, fill), RandomIoUCrop(), *flip, Resize((size, size))])


class TorchvisionStep:
    """A ``torchvision.transforms.v2`` transform run on ``(image, Targets)``: the boxes travel as
    ``tv_tensors.BoundingBoxes`` (XYXY, the image's size), so torchvision moves them with the
    pixels; labels and ignore flags follow by position (these transforms never drop a box), then
    boxes are clipped and empty ones dropped."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        from torchvision import tv_tensors

        boxes = tv_tensors.BoundingBoxes(targets.boxes, format="XYXY", canvas_size=tuple(image.shape[-2:]))
        out_image, out_boxes = self.transform(tv_tensors.Image(image), boxes)
        return clip_and_drop(out_image.as_subclass(Tensor), targets.with_boxes(out_boxes.as_subclass(Tensor)))

    def __repr__(self) -> str:
        return f"TorchvisionStep({self.transform!r})"


class RandomRotate90:
    """Turn counter-clockwise by k * 90 degrees, k drawn from {0, 1, 2, 3} per image
    (``torchvision.transforms.v2.functional.rotate`` with ``expand``: a turned non-square image
    keeps all its pixels, height and width swap)."""

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        turns = int(torch.randint(4, ()))
        if turns == 0:
            return image, targets
        return TorchvisionStep(partial(_rotate_both, angle=90.0 * turns))(image, targets)

    def __repr__(self) -> str:
        return "RandomRotate90()"


def _rotate_both(image, boxes, angle: float):
    return TF.rotate(image, angle, expand=True), TF.rotate(boxes, angle, expand=True)


class RandomScale:
    """Scale jitter: resize by a factor drawn uniformly from [low, high] per image (both sides,
    rounded to whole pixels; boxes by the exact per-axis ratios, ``torchvision.transforms.v2``)."""

    def __init__(self, low: float, high: float):
        self.low, self.high = low, high

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        factor = _uniform(self.low, self.high)
        height, width = int(image.shape[-2]), int(image.shape[-1])
        size = [max(1, round(height * factor)), max(1, round(width * factor))]
        return TorchvisionStep(partial(_resize_both, size=size))(image, targets)

    def __repr__(self) -> str:
        return f"RandomScale({self.low}, {self.high})"


def _resize_both(image, boxes, size: list[int]):
    return TF.resize(image, size, antialias=True).clamp(0, 1), TF.resize(boxes, size)


class RandomWindow:
    """A ``size`` x ``size`` window at a uniformly random place of the image, at the image's own
    resolution (a side shorter than ``size`` is kept whole). Boxes are shifted and clipped; a box
    with less than ``min_visible`` of its area inside becomes an ignore region (its anchors are
    neither positives nor negatives: a sliver of an object is not background either)."""

    def __init__(self, size: int, min_visible: float = 0.5):
        self.size, self.min_visible = size, min_visible

    def __call__(self, image: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        height, width = int(image.shape[-2]), int(image.shape[-1])
        top = int(torch.randint(max(height - self.size, 0) + 1, ()))
        left = int(torch.randint(max(width - self.size, 0) + 1, ()))
        window = (left, top, min(left + self.size, width), min(top + self.size, height))
        return image[:, window[1]:window[3], window[0]:window[2]], crop_targets(targets, window, self.min_visible,
                                                                                  keep_cut_as_ignore=True)

    def __repr__(self) -> str:
        return f"RandomWindow({self.size})"


def crop_targets(targets: Targets, window: tuple[int, int, int, int], min_visible: float,
                 keep_cut_as_ignore: bool = False) -> Targets:
    """Targets in the pixels of ``window`` (left, top, right, bottom) of their image: boxes
    clipped to it; a box keeps its place when at least ``min_visible`` of its area is inside. The
    others are dropped, or with ``keep_cut_as_ignore`` kept as ignore regions when partly inside."""
    left, top, right, bottom = window
    shift = torch.tensor([left, top, left, top], dtype=targets.boxes.dtype)
    clipped = clip_boxes(targets.boxes - shift, (bottom - top, right - left))
    inside = nonempty_mask(clipped)
    area = ((targets.boxes[:, 2:] - targets.boxes[:, :2]).clamp(min=0)).prod(dim=1)
    visible = (clipped[:, 2:] - clipped[:, :2]).clamp(min=0).prod(dim=1)
    enough = inside & (visible >= min_visible * area)
    cropped = Targets(clipped, targets.labels, targets.ignore.clone())
    if not keep_cut_as_ignore:
        return cropped.select(enough)
    cropped.ignore |= inside & ~enough
    return cropped.select(inside)


def augment_steps(data: DataConfig) -> list[Transform]:
    """The training augmentations after the resize, in order: scale jitter, the flips, rotate90,
    colour jitter (each only when its ``data`` option is on)."""
    from torchvision.transforms import v2

    steps: list[Transform] = []
    if tuple(data.scale_jitter) != (1.0, 1.0):
        steps.append(RandomScale(*data.scale_jitter))
    if data.hflip:
        steps.append(RandomHorizontalFlip(0.5))
    if data.vflip:
        steps.append(TorchvisionStep(v2.RandomVerticalFlip(0.5)))
    if data.rotate90:
        steps.append(RandomRotate90())
    if data.color_jitter:
        strength = data.color_jitter
        steps.append(TorchvisionStep(v2.ColorJitter(strength, strength, strength, min(0.5, strength / 4))))
    return steps


def build_transforms(data: DataConfig | InferenceSettings, train: bool) -> Compose:
    """The training (``train``) or evaluation pipeline that ``data`` names: the one place that
    turns ``train_transform`` / ``eval_transform`` into transforms. ``data``: a ``DataConfig``, or
    for evaluation a weights file's ``InferenceSettings``.

    "resize": ``ResizeKeepRatio(min_size, max_size)`` (training draws from ``data.min_sizes``,
    multi-scale; evaluation takes ``data.eval_min_size``); "fixed": ``Resize((fixed_size, fixed_size))``;
    "ssd" (training only): ``SSDAugmentation(fixed_size)``, its flip also set by ``data.hflip``.
    Training starts with ``RandomWindow(data.random_window)`` when that is set, and adds after
    the resize the augmentations of ``augment_steps`` (``RandomHorizontalFlip(0.5)`` when
    ``data.hflip``; vflip, rotate90, scale and colour jitter). Evaluation is deterministic; an
    ``InferenceSettings`` without an eval resize (``eval_transform`` None) keeps images as given.
    """
    kind = data.train_transform if train else data.eval_transform
    if kind is None and not train:
        return Compose([])
    window: list[Transform] = [RandomWindow(data.random_window)] if train and data.random_window else []
    if train and kind == "ssd":  # its own flip (data.hflip) and final fixed resize
        extra = augment_steps(replace(data, hflip=False))
        return Compose([*window, *SSDAugmentation(data.fixed_size, hflip=data.hflip).transforms, *extra])
    steps: list[Transform] = [*window, resize_step(data, kind, train)]
    if train:
        steps += augment_steps(data)
    return Compose(steps)


def resize_step(data: DataConfig | InferenceSettings, kind: str, train: bool = False) -> ResizeKeepRatio | Resize:
    """The resize of a pipeline of ``kind``: "resize" -> ``ResizeKeepRatio`` (training draws from
    ``data.min_sizes``, otherwise ``data.eval_min_size``, the largest); "fixed" and "ssd" ->
    ``Resize((fixed_size, fixed_size))`` (where ``SSDAugmentation`` ends). Without ``train`` it is
    deterministic: what the anchor analysis resizes boxes with."""
    if kind == "resize":
        return ResizeKeepRatio(data.min_sizes if train else data.eval_min_size, data.max_size)
    if kind in ("fixed", "ssd"):
        return Resize((data.fixed_size, data.fixed_size))
    raise ValueError(f"unknown transform {kind!r}; expected resize, fixed or ssd")
