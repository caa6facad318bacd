"""data/capacity.py and ``check-data --config``: the model's silent limits named before training."""
import inspect
import json

import numpy as np
from PIL import Image

from anchordet.cli.main import main
from anchordet.config.schema import ModelConfig
from anchordet.data.capacity import FAMILY_DEFAULTS, model_capacity


def test_the_repeated_defaults_are_the_factories_own():
    from anchordet.detectors import faster_rcnn, retinanet, ssd

    factories = {"retinanet_resnet_fpn": retinanet.retinanet_resnet_fpn, "ssd_vgg16": ssd.ssd_vgg16,
                 "faster_rcnn_resnet_c4": faster_rcnn.faster_rcnn_resnet_c4,
                 "faster_rcnn_vgg16": faster_rcnn.faster_rcnn_vgg16}
    for name, defaults in FAMILY_DEFAULTS.items():
        parameters = {**inspect.signature(faster_rcnn.assemble_faster_rcnn).parameters,  # their **options
                      **inspect.signature(factories[name]).parameters}
        for key, value in defaults.items():
            assert tuple(np.atleast_1d(parameters[key].default)) == tuple(np.atleast_1d(value)), (name, key)
    # every family keeps at least 300 detections per image by default
    for name in FAMILY_DEFAULTS:
        assert model_capacity(ModelConfig(name, {"num_classes": 3, "depth": 50})).keep >= 300


def write_dense(root, objects=40, side=6):
    """One 400 x 400 image holding ``objects`` boxes of ``side`` px, COCO."""
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((400, 400, 3), np.uint8)).save(root / "big.png")
    anns = [{"id": 500 + i, "image_id": 9, "category_id": 1, "bbox": [10.0 * (i % 30), 12.0 * (i // 30), side, side],
             "area": side * side, "iscrowd": 0} for i in range(objects)]
    gt = {"images": [{"id": 9, "file_name": "big.png", "width": 400, "height": 400}], "annotations": anns,
          "categories": [{"id": 1, "name": "tree"}]}
    (root / "ann.json").write_text(json.dumps(gt))
    return root / "ann.json"


def test_check_data_warns_of_crowded_images_and_objects_too_small(tmp_path, capsys):
    ann = write_dense(tmp_path / "d")
    # retinanet_digits_fast: 128 px eval (400 -> 128: a 6 px object becomes 1.9 px), anchors from 16 px
    assert main(["check-data", str(ann), "--config", "retinanet_digits_fast", "--set", "model.max_detections=30"]) == 0
    out = capsys.readouterr().out
    assert "1 image(s) hold more objects than the model keeps (max_detections = 30)" in out
    assert "image 9, 40 objects" in out
    assert "40 of 40 objects are smaller than the anchors can learn" in out and "side < 11.3 px" in out
    assert "annotation id 500" in out or "id 500" in out
    # the defaults keep 300 detections, and at 128 px a 60 px object is 19 px: no warning
    ann = write_dense(tmp_path / "e", objects=4, side=60)
    assert main(["check-data", str(ann), "--config", "retinanet_digits_fast"]) == 0
    assert "warning" not in capsys.readouterr().out
    # without --config: no model, no warning (and --set alone is refused)
    assert main(["check-data", str(write_dense(tmp_path / "f"))]) == 0
    assert "warning" not in capsys.readouterr().out
    assert main(["check-data", str(ann), "--set", "model.max_detections=30"]) == 2
