"""Every detector family trains and predicts through the command line (tiny versions of the
digits presets: a few iterations, then `predict` on a test scene)."""
import json

import pytest

from anchordet.cli.main import main
from anchordet.config.schema import DigitsOptions
from anchordet.data.digits import DigitsDataset
from anchordet.visualize import to_pil

SMALL_DATA = ["data.digits.num_train=8", "data.digits.num_val=2", "solver.batch_size=4", "solver.epochs=1",
              "data.num_workers=0", "run.threads=1", "run.log_every=1", "solver.warmup_iters=1"]
TINY = {
    "retinanet_digits": ["model.backbone_width=8", "model.fpn_channels=16", "model.head_channels=16"],
    "retinanet_digits_fast": ["model.backbone_width=8", "model.fpn_channels=16", "model.head_channels=16"],
    "ssd_digits": ["model.width=8"],
    # the SSD augmentation of the VOC / COCO presets (expand, IoU crop, distortion, flip, resize)
    "ssd_digits+ssd_augmentation": ["model.width=8", "data.train_transform=ssd", "data.fixed_size=128"],
    "faster_rcnn_digits": ["model.backbone_width=8", "data.min_size=128", "data.max_size=128",
                           "model.anchor_sizes=[16, 32, 64]"],
    # the VGG16 variant (seed 003): the VOC preset moved onto digits, from scratch, VOC07 mAP
    "faster_rcnn_vgg16_voc+digits": ["model.num_classes=10", "model.backbone_weights=none", "model.backbone_width=4",
                                     "model.fc_channels=32", "model.anchor_sizes=[16, 32, 64]", "data.dataset=digits",
                                     "data.min_size=128", "data.max_size=128", "data.hflip=false"],
}


@pytest.mark.parametrize("preset", sorted(TINY))
def test_preset_trains_and_predicts_through_the_cli(preset, tmp_path):
    args = ["train", "--no-progress", "--config", preset.split("+")[0]]
    for item in SMALL_DATA + TINY[preset] + [f"run.out_dir={tmp_path / 'run'}"]:
        args += ["--set", item]
    assert main(args) == 0
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in metrics if r["type"] == "train"]
    assert len(losses) == 2 and all(r["loss"] > 0 for r in losses)
    assert [r["type"] for r in metrics].count("eval") == 1
    image = tmp_path / "scene.png"
    to_pil(DigitsDataset("test", DigitsOptions(num_val=1)).scene(0)[0]).save(image)
    assert main(["predict", "--weights", str(tmp_path / "run" / "model.safetensors"), str(image),
                 "--out", str(tmp_path / "pred"), "--score-thresh", "0.0", "--device", "cpu"]) == 0
    assert (tmp_path / "pred" / "scene.png").is_file()
    results = json.loads((tmp_path / "pred" / "detections.json").read_text())
    assert all(r["image_id"] == 0 and 0 <= r["category_id"] <= 9 for r in results)
