"""Batches of a training epoch: the seeded order, aspect-ratio groups, per-batch multi-scale sizes,
DDP shards and resuming, checked against hand-worked cases and a plain reference."""
import pytest
import torch

from anchordet.config.load import load_config
from anchordet.config.inference import InferenceSettings
from anchordet.config.schema import ConfigError, DataConfig, DigitsOptions
from anchordet.data.transforms import build_transforms
from anchordet.engine.data import EpochSampler, SeededItems, build_dataset, make_loader
from anchordet.engine.samplers import (
    aspect_ratio_edges, aspect_ratio_groups, batch_min_size, epoch_order, group_batches, padded_share,
)


def reference_epoch_indices(size, global_batch, seed, epoch, rank, world_size, start_batch):
    """The sampler as it was before groups and batch numbers (commit 9611ad8), written out."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed * 7919 + epoch)).tolist()
    order = order[: size // global_batch * global_batch]
    local = global_batch // world_size
    batches = [order[i:i + global_batch] for i in range(0, len(order), global_batch)]
    return [i for b in batches[start_batch:] for i in b[rank * local:(rank + 1) * local]]


@pytest.mark.parametrize("size, batch, rank, world, start", [(37, 8, 0, 1, 0), (37, 8, 1, 2, 2), (64, 16, 3, 4, 1)])
def test_without_groups_the_sampler_is_unchanged(size, batch, rank, world, start):
    got = EpochSampler(size, batch, seed=5, epoch=3, shuffle=True, rank=rank, world_size=world, start_batch=start)
    assert list(got) == reference_epoch_indices(size, batch, 5, 3, rank, world, start)
    one_group = EpochSampler(size, batch, seed=5, epoch=3, shuffle=True, rank=rank, world_size=world,
                             start_batch=start, groups=[0] * size)
    assert list(one_group) == list(got)  # digits: every scene is square, one group, the same batches


def test_batch_numbers_name_the_global_batch_on_every_rank():
    pairs = [list(EpochSampler(20, 4, seed=0, epoch=0, shuffle=True, rank=r, world_size=2, start_batch=1,
                               batch_numbers=True)) for r in range(2)]
    assert [b for _, b in pairs[0]] == [1, 1, 2, 2, 3, 3, 4, 4] == [b for _, b in pairs[1]]
    plain = [list(EpochSampler(20, 4, seed=0, epoch=0, shuffle=True, rank=r, world_size=2, start_batch=1))
             for r in range(2)]
    assert [i for i, _ in pairs[0]] == plain[0] and [i for i, _ in pairs[1]] == plain[1]


def test_batch_min_size_is_a_seeded_draw_per_batch():
    sizes = (48, 56, 64)
    draws = [batch_min_size(sizes, seed=0, epoch=2, batch=b) for b in range(60)]
    assert set(draws) == set(sizes)  # every size gets drawn
    assert draws == [batch_min_size(sizes, 0, 2, b) for b in range(60)]  # a pure function
    assert draws != [batch_min_size(sizes, 0, 3, b) for b in range(60)]  # another epoch, other draws
    assert batch_min_size((800,), 0, 0, 7) == 800


def test_multi_scale_batches_are_one_size_on_every_rank_and_on_resume():
    """Digits scenes resized to a per-batch shorter side: within a global batch every image (on
    both ranks) has the batch's size, and a loader started at batch 2 sees the same sizes."""
    data = DataConfig(dataset="digits", digits=DigitsOptions(num_train=24, canvas_size=64), min_size=(32, 48, 64),
                      max_size=64, hflip=True, num_workers=0)
    dataset = SeededItems(build_dataset(data, "train"), seed=1)
    dataset.set_epoch(1)

    def sizes(rank, world, start, workers=0):
        sampler = EpochSampler(len(dataset), 4, seed=1, epoch=1, shuffle=True, rank=rank, world_size=world,
                               start_batch=start, batch_numbers=True)
        loader = make_loader(dataset, sampler, 4 // world, workers, 32, seed=1, epoch=1)
        return [(b, tuple(batch.images.image_sizes)) for b, batch in zip(range(start, 99), loader)]

    straight = sizes(0, 1, 0)
    assert len(straight) == 6
    for number, image_sizes in straight:
        side = batch_min_size((32, 48, 64), 1, 1, number)
        assert image_sizes == ((side, side),) * 4
    assert len({s for _, s in straight}) > 1  # not one size for the whole epoch
    halves = [sizes(r, 2, 0) for r in range(2)]
    assert [(b, s * 2) for b, s in halves[0]] == straight and halves[0] == halves[1]
    assert sizes(0, 1, 2) == straight[2:]
    assert sizes(0, 1, 0, workers=2) == straight  # each worker process sets the size on its own copy


def test_multi_scale_augmentation_of_an_item_is_its_own():
    """Setting the batch's size does not consume the item's random stream: the flip of item i is
    the same whichever size its batch drew (compare with single-scale at that size)."""
    multi = DataConfig(dataset="digits", digits=DigitsOptions(num_train=8, canvas_size=64), min_size=(32, 64),
                       max_size=64, hflip=True)
    items = SeededItems(build_dataset(multi, "train"), seed=0)
    for index in range(8):
        sample = items[(index, 3)]
        side = batch_min_size((32, 64), 0, 0, 3)
        single = DataConfig(dataset="digits", digits=DigitsOptions(num_train=8, canvas_size=64), min_size=side,
                            max_size=64, hflip=True)
        expected = SeededItems(build_dataset(single, "train"), seed=0)[index]
        assert torch.equal(sample.image, expected.image) and torch.equal(sample.targets.boxes, expected.targets.boxes)
    assert items.resize.batch_min_size is None  # reset after each item


def test_evaluation_and_inference_use_the_largest_size():
    data = DataConfig(min_size=[640, 800, 720], max_size=1333)
    assert data.min_size == (640, 800, 720) and data.eval_min_size == 800
    (resize,) = build_transforms(data, train=False).transforms
    assert resize.min_sizes == [800]
    train_resize = build_transforms(data, train=True).transforms[0]
    assert train_resize.min_sizes == [640, 800, 720]
    config = load_config("retinanet_r50_coco")
    assert config.data.min_size == (640, 672, 704, 736, 768, 800) and config.data.eval_min_size == 800
    settings = InferenceSettings.from_training(config.data, [str(d) for d in range(10)], range(10))
    assert settings.min_size == 800


@pytest.mark.parametrize("override, message", [
    ("data.min_size=[640, 0, 800]", "data.min_size: expected a positive integer or a non-empty list of them, "
                                    "got [640, 0, 800]"),
    ("data.min_size=[]", "data.min_size: expected a positive integer or a non-empty list"),
    ("data.min_size=-5", "data.min_size: expected a positive integer or a non-empty list of them, got -5"),
    ("data.min_size=[640, 1400]", "data.max_size: must be an integer >= the largest data.min_size (1400), got 1333"),
])
def test_bad_sizes_are_one_line(override, message):
    with pytest.raises(ConfigError) as error:
        load_config("retinanet_r50_coco", [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_aspect_ratio_edges_and_groups():
    assert aspect_ratio_edges(1) == [] and aspect_ratio_edges(2) == [1.0]
    assert aspect_ratio_edges(4) == pytest.approx([2 ** -0.5, 1.0, 2 ** 0.5])
    # 480 x 640 landscape, 640 x 480 portrait, a square, a panorama, a tall strip
    ratios = [640 / 480, 480 / 640, 1.0, 4.0, 0.2]
    assert aspect_ratio_groups(ratios, 2) == [1, 0, 1, 1, 0]
    assert aspect_ratio_groups(ratios, 4) == [2, 1, 2, 3, 0]
    assert aspect_ratio_groups(ratios, 1) == [0] * 5


def test_group_batches_by_hand():
    order = [5, 0, 3, 1, 4, 2, 6, 7]
    groups = [0, 1, 0, 1, 0, 1, 1, 0]  # item -> group: items 1, 3, 5, 6 in group 1
    # batches of 2, walking the order: 5 waits, 0 waits, 3 joins 5; 1 waits, 4 joins 0; 2 waits, 6 joins 1; 7 joins 2
    assert group_batches(order, groups, 2) == [[5, 3], [0, 4], [1, 6], [2, 7]]
    # batches of 3: [5, 3, 1] at item 1, [0, 4, 2] at item 2; 6 (group 1) and 7 (group 0) are left
    assert group_batches(order, groups, 3) == [[5, 3, 1], [0, 4, 2]]
    assert group_batches(order, groups, 3, drop_last=False) == [[5, 3, 1], [0, 4, 2], [6, 7]]
    assert group_batches(order, None, 3) == [[5, 0, 3], [1, 4, 2]]
    for groups_of in (None, groups):
        assert len(group_batches(list(range(8)), groups_of, 3)) == 8 // 3


def test_grouped_batches_keep_their_group_under_ddp_and_resume():
    ratios = [4 / 3 if i % 3 else 3 / 4 for i in range(40)]
    groups = aspect_ratio_groups(ratios, 2)
    full = list(EpochSampler(40, 4, seed=2, epoch=1, shuffle=True, groups=groups, batch_numbers=True))
    batches = {}
    for index, number in full:
        batches.setdefault(number, []).append(index)
    assert len(batches) == 10 and sorted(i for b in batches.values() for i in b) == list(range(40))
    mixed = [b for b in batches.values() if len({groups[i] for i in b}) > 1]
    assert len(mixed) <= 1  # only the batch of left-overs at the end can mix groups
    ranks = [list(EpochSampler(40, 4, seed=2, epoch=1, shuffle=True, groups=groups, rank=r, world_size=2,
                               batch_numbers=True)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == sorted(full)
    assert all({groups[i] for i, n in ranks[0] + ranks[1] if n == number} == {groups[batches[number][0]]}
               for number in batches if batches[number] not in mixed)
    resumed = list(EpochSampler(40, 4, seed=2, epoch=1, shuffle=True, groups=groups, start_batch=7,
                                batch_numbers=True))
    assert resumed == [pair for pair in full if pair[1] >= 7]


def test_epoch_order_and_num_batches():
    assert epoch_order(5, 0, 0, shuffle=False) == [0, 1, 2, 3, 4]
    assert sorted(epoch_order(50, 3, 1, shuffle=True)) == list(range(50))
    assert len(EpochSampler(40, 4, seed=0, epoch=0, shuffle=True, num_batches=6)) == 24


def test_padded_share_by_hand():
    # 480 x 640 and 640 x 480 pad each other to 640 x 640: 2 * 307200 of 2 * 409600 pixels are image
    assert padded_share([(480, 640), (640, 480)]) == pytest.approx(0.25)
    assert padded_share([(480, 640), (480, 640)]) == 0.0
    assert padded_share([(100, 100)], size_divisible=32) == pytest.approx(1 - 100 * 100 / (128 * 128))
