import numpy as np
import pytest
import torch
from PIL import Image

from anchordet.config.schema import DigitsOptions
from anchordet.data.coco import write_coco_json
from anchordet.data.datasets import CocoDataset, VocDataset, YoloDataset
from anchordet.data.digits import DigitsDataset
from anchordet.data.spec import build_dataset, digits_spec, load_dataset_spec


def _coco_files(root):
    (root / "imgs").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "imgs" / "x.png")
    gt = {"images": [{"id": 4, "file_name": "x.png", "width": 8, "height": 8}],
          "annotations": [{"id": 1, "image_id": 4, "category_id": 9, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}],
          "categories": [{"id": 9, "name": "nine"}, {"id": 2, "name": "two"}]}
    write_coco_json(root / "ann" / "train.json", gt)


def test_coco_yaml_relative_to_its_folder_and_names_from_the_json(tmp_path):
    _coco_files(tmp_path)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "data.yaml").write_text(
        "format: coco\nroot: ..\ntrain: {images: imgs, annotations: ann/train.json}\n"
        "val: {images: imgs, annotations: ann/train.json}\n")
    spec = load_dataset_spec(tmp_path / "cfg" / "data.yaml")
    assert spec.format == "coco" and spec.class_names == ["two", "nine"] and spec.num_classes == 2
    assert spec.splits["train"]["images"] == (tmp_path / "imgs").resolve()
    ds = build_dataset(spec, "val")
    assert isinstance(ds, CocoDataset) and ds.category_ids == [2, 9] and ds[0].targets.labels.tolist() == [1]
    with pytest.raises(ValueError, match=r"data.yaml: no split 'test'; it has train, val"):
        build_dataset(spec, "test")


def test_voc_and_yolo_yaml(tmp_path):
    (tmp_path / "VOC" / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "VOC" / "ImageSets" / "Main" / "val.txt").write_text("")
    (tmp_path / "voc.yaml").write_text("format: voc\nnames: [a, b]\nval: {root: VOC, image_set: val}\n")
    voc = build_dataset(load_dataset_spec(tmp_path / "voc.yaml"), "val")
    assert isinstance(voc, VocDataset) and len(voc) == 0 and voc.class_names == ["a", "b"]
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "yolo.yaml").write_text("format: yolo\nnames: [a]\nval: {images: images/val, labels: labels/val}\n")
    yolo_spec = load_dataset_spec(tmp_path / "yolo.yaml")
    assert yolo_spec.splits["val"]["labels"] == (tmp_path / "labels" / "val").resolve()
    assert isinstance(build_dataset(yolo_spec, "val"), YoloDataset)


@pytest.mark.parametrize("text, message", [
    ("format: tfrecord\n", r"key 'format': must be one of coco, voc, yolo, csv, digits; got 'tfrecord'"),
    ("format: voc\nval: {image_set: val}\n", r"key 'names': required"),
    ("format: coco\nval: {images: imgs}\n", r"key 'val.annotations': missing"),
    ("format: yolo\nnames: {0: a, 2: b}\nval: images\n", r"key 'names': as a mapping its keys must be 0..1"),
    ("format: yolo\nnames: [a, a]\nval: images\n", r"key 'names': class names must be unique"),
    ("format: coco\nnames: [a]\n", r"key 'train': no split given"),
    ("format: digits\nnum_trian: 3\n", r"key 'num_trian': not a digits option"),
    ("- a\n- b\n", r"a dataset description is a YAML mapping"),
    ("format: [\n", r"not valid YAML"),
])
def test_errors_name_the_file_and_the_key(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"bad.yaml: .*" + message):
        load_dataset_spec(tmp_path / "bad.yaml")


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        load_dataset_spec("nowhere.yaml")


def test_digits_spec_and_dataset_contract():
    spec = digits_spec(DigitsOptions(num_train=3, num_val=2, canvas_size=64, digits_per_image=(1, 2),
                                     digit_size=(16, 24), seed=5))
    assert load_dataset_spec("digits").num_classes == 10 and spec.class_names == [str(d) for d in range(10)]
    train, val = build_dataset(spec, "train"), build_dataset(spec, "val")
    assert isinstance(train, DigitsDataset) and len(train) == 3 and len(val) == 2 and val.split == "test"
    sample = val[1]
    assert sample.image.shape == (3, 64, 64) and sample.image_id == 1 and sample.orig_size == (64, 64)
    gt = val.coco_ground_truth()
    assert [im["id"] for im in gt["images"]] == [0, 1]
    boxes = torch.tensor([a["bbox"] for a in gt["annotations"] if a["image_id"] == 1])
    assert torch.equal(torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1), sample.targets.boxes)
    assert [a["category_id"] for a in gt["annotations"] if a["image_id"] == 1] == \
        [val.category_ids[k] for k in sample.targets.labels.tolist()]
    with pytest.raises(ValueError, match="digit_size"):
        digits_spec(DigitsOptions(canvas_size=16))
