"""engine/data.py: the training set of windows cut from one large image."""
import torch

from anchordet.config.schema import DataConfig, DigitsOptions
from anchordet.engine.data import RepeatedImages, SeededItems, aspect_groups, build_dataset


def _one_large_scene(**options) -> DataConfig:
    digits = DigitsOptions(num_train=1, num_val=1, canvas_size=192, digits_per_image=(20, 20), digit_size=(12, 20),
                           fixed_train=True)
    return DataConfig(dataset="digits", digits=digits, min_size=48, max_size=48, hflip=False, num_workers=0,
                      **options)


def test_one_image_gives_windows_per_image_different_windows():
    data = _one_large_scene(random_window=48, windows_per_image=6)
    dataset = build_dataset(data, "train")
    assert isinstance(dataset, RepeatedImages) and len(dataset) == 6 and dataset.num_classes == 10
    items = SeededItems(dataset, seed=0)
    samples = [items[i] for i in range(6)]
    assert all(s.image.shape == (3, 48, 48) for s in samples)
    assert len({s.image.sum().item() for s in samples}) == 6  # each repeat its own random window
    for sample in samples:
        assert ((sample.targets.boxes >= 0) & (sample.targets.boxes <= 48)).all()
    again = SeededItems(build_dataset(data, "train"), seed=0)[3]
    assert torch.equal(again.image, samples[3].image)  # seeded: the same window on a rerun
    assert aspect_groups(data, items) is None  # windows are square: no aspect-ratio grouping
    assert len(build_dataset(data, "val")) == 1  # evaluation: whole images, once


def test_without_windows_one_image_is_one_sample():
    dataset = build_dataset(_one_large_scene(), "train")
    assert len(dataset) == 1 and dataset[0].image.shape == (3, 48, 48)  # the whole scene, resized
