"""Boxes read from annotation files and resized as the training pipeline resizes them."""
import json

import pytest
import torch

from anchordet.analysis.anchors.coverage import read_dataset_boxes, resize_for_training
from anchordet.config.schema import DataConfig


def test_keep_ratio_resize_of_boxes():
    # 480 x 640 (h x w) to shorter side 800: scale min(800 / 480, 1333 / 640) = 5 / 3 -> 800 x 1067
    boxes, size = resize_for_training(torch.tensor([[0.0, 0, 64, 48], [600, 400, 640, 480]]), (480, 640),
                                      DataConfig(min_size=800, max_size=1333))
    assert size == (800, 1067)
    assert torch.allclose(boxes, torch.tensor([[0.0, 0, 64 * 1067 / 640, 80], [600 * 1067 / 640, 400 * 800 / 480,
                                                                            1067, 800]]))


def test_fixed_resize_of_boxes():
    boxes, size = resize_for_training(torch.tensor([[10.0, 20, 30, 40]]), (100, 200),
                                      DataConfig(train_transform="ssd", fixed_size=300))
    assert size == (300, 300) and boxes.tolist() == [[15.0, 60.0, 45.0, 120.0]]


def _coco(tmp_path):
    data = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 200, "height": 100},
                   {"id": 9, "file_name": "b.jpg", "width": 50, "height": 50}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 30], "iscrowd": 0, "area": 600},
            {"id": 2, "image_id": 7, "category_id": 5, "bbox": [0, 0, 100, 100], "iscrowd": 1, "area": 1e4},
            {"id": 3, "image_id": 7, "category_id": 5, "bbox": [50, 50, 0, 10], "iscrowd": 0, "area": 0},
            {"id": 4, "image_id": 9, "category_id": 5, "bbox": [5, 5, 10, 10], "iscrowd": 0, "area": 100},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    (tmp_path / "data.yaml").write_text("format: coco\ntrain: {images: images, annotations: ann.json}\n")
    return tmp_path / "data.yaml"


def test_coco_split_without_decoding_images(tmp_path):
    # no image files exist: sizes come from the JSON
    result = read_dataset_boxes(DataConfig(dataset=str(_coco(tmp_path)), min_size=200, max_size=400), "train")
    assert result.class_names == ["cat", "dog"] and result.num_images == 2
    assert result.skipped == {"ignored": 1, "bad": 1, "empty_after_resize": 0}
    first, second = result.images
    # image 7: 100 x 200 -> 200 x 400 (scale 2); image 9: 50 x 50 -> 200 x 200 (scale 4)
    assert (first.image_id, first.input_size) == (7, (200, 400))
    assert first.boxes.tolist() == [[20.0, 20.0, 60.0, 80.0]] and first.labels.tolist() == [0]
    assert (second.image_id, second.input_size, second.boxes.tolist()) == (9, (200, 200), [[20.0, 20.0, 60.0, 60.0]])
    assert len(read_dataset_boxes(DataConfig(dataset=str(_coco(tmp_path))), "train", max_images=1).images) == 1


def test_missing_split_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="data.yaml: no split 'val'"):
        read_dataset_boxes(DataConfig(dataset=str(_coco(tmp_path))), "val")


def test_digits_boxes_are_the_dataset_targets():
    from anchordet.config.schema import DigitsOptions
    from anchordet.data.digits import DigitsDataset

    result = read_dataset_boxes(DataConfig(dataset="digits", min_size=256, max_size=256), "train", max_images=3)
    dataset = DigitsDataset("train", DigitsOptions(num_train=2000, canvas_size=128, digits_per_image=(1, 4), seed=0))
    for index, image in enumerate(result.images):
        assert image.input_size == (256, 256)
        assert torch.equal(image.boxes, dataset.read_annotations(index).boxes * 2)
