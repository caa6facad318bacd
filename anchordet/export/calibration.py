"""Calibration inputs for post-training INT8 quantization (``anchordet export --int8``): images of
the user's dataset prepared exactly as the Predictor feeds the exported graph (the model's eval
resize, padded to the graph's multiple or its static size), one graph call each."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from anchordet.errors import UserError
from anchordet.structures.image_batch import ImageBatch


def calibration_inputs(data: str, settings, count: int, size_divisible: int, postprocess: bool,
                       fixed_shape: Sequence[int] | None = None, digits_images: int | None = None) -> list[dict[str, np.ndarray]]:
    """Graph feeds (``images`` (B, 3, H, W) float32 and, with ``postprocess``, ``image_sizes``
    (B, 2) int64) of the first ``count`` training images of ``data`` (a dataset YAML or "digits"),
    spread evenly over the split when it has more.

    Args:
        settings: the model's ``InferenceSettings`` (its eval resize is applied).
        fixed_shape: (B, H, W) of a graph exported without --dynamic: images are padded to H x W
            and grouped B at a time (the last group filled with blank images); None: one image
            per feed, padded to ``size_divisible``.
        digits_images: for "digits", the number of training scenes to generate from (default:
            the settings' own, or ``count``).
    """
    from anchordet.config.schema import DigitsOptions
    from anchordet.data.spec import build_dataset, digits_spec, load_dataset_spec
    from anchordet.data.transforms import build_transforms

    if count < 1:
        raise UserError(f"--calib-images must be >= 1, got {count}")
    digits = settings.digits or DigitsOptions()
    if data == "digits":
        import dataclasses

        digits = dataclasses.replace(digits, num_train=digits_images or count)
    spec = digits_spec(digits) if data == "digits" else load_dataset_spec(data)
    dataset = build_dataset(spec, split="train", transforms=build_transforms(settings, train=False))
    if len(dataset) == 0:
        raise UserError(f"{data}: its training split has no images to calibrate on")
    picks = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    images = [dataset[int(i)].image for i in dict.fromkeys(picks)]
    return _feeds(images, size_divisible, postprocess, fixed_shape)


def _feeds(images: list[torch.Tensor], size_divisible: int, postprocess: bool,
           fixed_shape: Sequence[int] | None) -> list[dict[str, np.ndarray]]:
    batch_size = fixed_shape[0] if fixed_shape else 1
    feeds = []
    for start in range(0, len(images), batch_size):
        group = images[start:start + batch_size]
        batch = ImageBatch.from_images(group, size_divisible)
        tensor = batch.tensor
        sizes = list(batch.image_sizes)
        if fixed_shape:
            height, width = fixed_shape[1], fixed_shape[2]
            if batch.padded_size[0] > height or batch.padded_size[1] > width:
                raise UserError(f"a calibration image resized to {batch.padded_size[0]} x {batch.padded_size[1]} "
                                f"does not fit the exported input {height} x {width}: export with --dynamic or a "
                                f"larger --size")
            full = tensor.new_zeros((batch_size, 3, height, width))
            full[: len(group), :, : tensor.shape[-2], : tensor.shape[-1]] = tensor
            tensor = full
            sizes += [(height, width)] * (batch_size - len(group))
        feed = {"images": tensor.numpy().astype(np.float32)}
        if postprocess:
            feed["image_sizes"] = np.asarray(sizes, dtype=np.int64)
        feeds.append(feed)
    return feeds

