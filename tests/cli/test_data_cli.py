import json

import pytest
import torch
from PIL import Image

from anchordet.cli.main import main
from anchordet.config.schema import DigitsOptions
from anchordet.data.digits import DigitsDataset
from anchordet.data.spec import build_dataset, load_dataset_spec


def test_data_digits_writes_a_coco_dataset_equal_to_the_generated_one(tmp_path, capsys):
    out = tmp_path / "digits"
    args = ["data", "digits", "--out", str(out), "--num-train", "3", "--num-val", "2", "--canvas-size", "64",
            "--digit-size", "16", "30", "--seed", "4", "--preview", str(tmp_path / "preview.png")]
    assert main(args) == 0
    assert "wrote 3 train and 2 val scenes" in capsys.readouterr().out
    spec = load_dataset_spec(out / "data.yaml")
    assert spec.format == "coco" and spec.class_names == [str(d) for d in range(10)]
    written = build_dataset(spec, "val")
    generated = DigitsDataset("val", DigitsOptions(num_val=2, canvas_size=64, digits_per_image=(1, 4), digit_size=(16, 30), seed=4))
    assert written.category_ids == generated.category_ids
    for i in range(2):
        a, b = written[i], generated[i]
        assert a.image_id == b.image_id and a.orig_size == (64, 64)
        assert torch.equal(a.targets.boxes, b.targets.boxes) and torch.equal(a.targets.labels, b.targets.labels)
        assert (a.image - b.image).abs().max() <= 0.5 / 255 + 1e-6  # PNG keeps 8 bits
    gt = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert [im["file_name"] for im in gt["images"]] == ["train_000000.png", "train_000001.png", "train_000002.png"]
    preview = Image.open(tmp_path / "preview.png")
    assert preview.size == (3 * 128, 2 * 128)  # 2 x 3 scenes of 64 px drawn at twice the size


def test_data_errors(tmp_path, capsys):
    assert main(["data", "digits"]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert main(["data", "digits", "--out", str(tmp_path), "--canvas-size", "16"]) == 2
    assert "digit_size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "mnist", "--out", str(tmp_path)])
