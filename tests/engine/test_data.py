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


def test_train_from_one_large_image_with_windows_and_from_its_tiles(tmp_path):
    """`anchordet train` on ONE 256 px annotated image: 8 random 64 px windows per epoch (2 batches
    of 4), and `anchordet data tile` then training on the tiles, both through the real CLI."""
    import json

    from anchordet.cli.main import main
    from tests.helpers import write_coco_dataset

    grid = [(i / 4 + 0.05, j / 4 + 0.05, i / 4 + 0.15, j / 4 + 0.15) for i in range(4) for j in range(4)]
    source = write_coco_dataset(tmp_path / "large", [(256, 256)], boxes=grid, seed=1, names=("a", "b"))
    tiny = ["model.backbone_width=8", "model.fpn_channels=16", "model.head_channels=16", "model.head_num_convs=1",
            "model.num_classes=2", "data.min_size=64", "data.max_size=64", "data.num_workers=0",
            "solver.batch_size=4", "solver.warmup_iters=1", "solver.epochs=1", "run.eval_every=0", "run.log_every=1",
            "run.threads=1", "data.hflip=false"]

    def train(out, *extra):
        args = ["train", "--no-progress", "--config", "retinanet_digits_fast"]
        for item in [*tiny, f"run.out_dir={out}", *extra]:
            args += ["--set", item]
        return main(args)

    assert train(tmp_path / "windows", f"data.dataset={source}", "data.random_window=64",
                 "data.windows_per_image=8", "data.vflip=true", "data.rotate90=true", "data.color_jitter=0.2",
                 "data.scale_jitter=[0.8,1.2]") == 0
    records = [json.loads(line) for line in (tmp_path / "windows" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["type"] == "train"] == [1, 2]  # 8 windows / batch 4
    assert main(["data", "tile", str(source), "--size", "64", "--overlap", "0", "--out", str(tmp_path / "tiles"),
                 "--empty-ratio", "1"]) == 0
    assert len(json.loads((tmp_path / "tiles" / "tiles.json").read_text())["tiles"]["train"]) == 16  # 4 x 4, each with a box
    assert train(tmp_path / "tiled", f"data.dataset={tmp_path / 'tiles' / 'data.yaml'}") == 0
