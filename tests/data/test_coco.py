import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from anchordet.data.coco import write_coco_json
from anchordet.data.datasets import CocoDataset
from anchordet.structures.boxes import box_xyxy_to_xywh


def _write_images(folder, sizes):
    for name, (height, width) in sizes.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(folder / name)


def _gt():
    """Two categories with COCO-like gappy ids (3 and 7); image 12 has no objects."""
    return {
        "images": [{"id": 10, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 12, "file_name": "sub/b.png", "width": 20, "height": 24}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [1.5, 2.0, 10.0, 8.0], "area": 70.0, "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [20.0, 10.0, 19.0, 20.0], "area": 380.0, "iscrowd": 1},
            {"id": 5, "image_id": 10, "category_id": 3, "bbox": [0.0, 0.0, 5.0, 5.0], "area": 25.0, "iscrowd": 0},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }


@pytest.fixture
def coco_dir(tmp_path):
    _write_images(tmp_path / "images", {"a.png": (30, 40), "sub/b.png": (24, 20)})
    write_coco_json(tmp_path / "ann.json", _gt())
    return tmp_path


def test_reads_boxes_labels_ignore_and_ids(coco_dir):
    ds = CocoDataset(coco_dir / "images", coco_dir / "ann.json")
    # Labels follow increasing category id: 3 (cat) -> 0, 7 (dog) -> 1.
    assert ds.class_names == ["cat", "dog"] and ds.category_ids == [3, 7] and ds.num_classes == 2
    assert len(ds) == 2
    first = ds[0]
    assert first.image_id == 10 and first.orig_size == (30, 40) and first.image.shape == (3, 30, 40)
    assert first.targets.boxes.tolist() == [[1.5, 2.0, 11.5, 10.0], [20.0, 10.0, 39.0, 30.0], [0.0, 0.0, 5.0, 5.0]]
    assert first.targets.labels.tolist() == [1, 0, 0]
    assert first.targets.ignore.tolist() == [False, True, False]  # iscrowd kept as an ignore region
    empty = ds[1]
    assert empty.image_id == 12 and len(empty.targets) == 0 and empty.image.shape == (3, 24, 20)


def test_the_dataset_pickles_for_loader_workers(coco_dir):
    """DataLoader workers started by spawn / forkserver get the dataset pickled, with the records'
    message texts (made lazily, ``_WrittenBbox``) still able to quote the file."""
    import pickle

    ds = CocoDataset(coco_dir / "images", coco_dir / "ann.json")
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.records == ds.records and torch.equal(copy[0].targets.boxes, ds[0].targets.boxes)
    ann = copy.records.images[0].annotations[0]
    assert str(ann.written) == "bbox [1.5, 2.0, 10.0, 8.0] (x, y, w, h)"  # as the file writes it


def test_round_trip_write_read_same_targets_and_gt(coco_dir):
    ds = CocoDataset(coco_dir / "images", coco_dir / "ann.json")
    gt = ds.coco_ground_truth()
    write_coco_json(coco_dir / "again.json", gt)
    again = CocoDataset(coco_dir / "images", coco_dir / "again.json")
    for i in range(len(ds)):
        a, b = ds[i], again[i]
        assert torch.equal(a.targets.boxes, b.targets.boxes) and torch.equal(a.targets.labels, b.targets.labels)
        assert torch.equal(a.targets.ignore, b.targets.ignore) and a.image_id == b.image_id
    original = _gt()
    assert gt["images"] == original["images"]
    assert gt["annotations"] == original["annotations"]  # ids, areas, crowd flags and bboxes preserved
    assert sorted(gt["categories"], key=lambda c: c["id"]) == sorted(original["categories"], key=lambda c: c["id"])
    # Label k -> category_ids[k] reproduces the file's category of every box.
    boxes = box_xyxy_to_xywh(ds[0].targets.boxes).tolist()
    assert [ds.category_ids[k] for k in ds[0].targets.labels.tolist()] == [7, 3, 3]
    assert boxes == [a["bbox"] for a in original["annotations"]]
    coco = COCO(str(coco_dir / "again.json"))  # pycocotools reads what we write
    assert coco.getAnnIds(imgIds=[10], iscrowd=False) == [1, 5]


def test_class_names_choose_the_label_order(coco_dir):
    ds = CocoDataset(coco_dir / "images", coco_dir / "ann.json", class_names=["dog", "cat"])
    assert ds.category_ids == [7, 3] and ds[0].targets.labels.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match=r"ann.json: class names \['bird'\] are not among its categories"):
        CocoDataset(coco_dir / "images", coco_dir / "ann.json", class_names=["bird"])


def _with_bad_annotation(coco_dir):
    gt = _gt()
    gt["annotations"].append({"id": 9, "image_id": 12, "category_id": 3, "bbox": [4.0, 4.0, 0.0, 6.0]})
    write_coco_json(coco_dir / "bad.json", gt)


def test_bad_annotation_raises_or_is_skipped_with_a_warning(coco_dir):
    _with_bad_annotation(coco_dir)
    message = r"bad.json, image 12, annotation id 9: box \[4, 4, 4, 10\] \(x1, y1, x2, y2\) is degenerate: width 0"
    with pytest.raises(ValueError, match=message):
        CocoDataset(coco_dir / "images", coco_dir / "bad.json")
    with pytest.warns(UserWarning, match=message):
        ds = CocoDataset(coco_dir / "images", coco_dir / "bad.json", skip_bad_annotations=True)
    assert len(ds) == 2 and len(ds[1].targets) == 0  # the image stays, its bad box is skipped


def test_size_mismatch_and_bad_json(coco_dir):
    gt = _gt()
    gt["images"][1]["width"] = 21
    write_coco_json(coco_dir / "size.json", gt)
    ds = CocoDataset(coco_dir / "images", coco_dir / "size.json")
    with pytest.raises(ValueError, match=r"size.json, image 12: annotation says height x width 24x21 but b.png is 24x20"):
        ds[1]
    (coco_dir / "broken.json").write_text("{\"images\": [")
    with pytest.raises(ValueError, match="broken.json: malformed JSON"):
        CocoDataset(coco_dir / "images", coco_dir / "broken.json")
    (coco_dir / "nokey.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="nokey.json: missing the list 'categories'"):
        CocoDataset(coco_dir / "images", coco_dir / "nokey.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file warns about nothing
        CocoDataset(coco_dir / "images", coco_dir / "ann.json")


def test_transforms_are_applied(coco_dir):
    from anchordet.data.transforms import Resize

    ds = CocoDataset(coco_dir / "images", coco_dir / "ann.json", transforms=Resize((60, 20)))
    sample = ds[0]
    assert sample.image.shape == (3, 60, 20) and sample.orig_size == (30, 40)
    # x scales by 20 / 40, y by 60 / 30.
    assert sample.targets.boxes[0].tolist() == [1.5 / 2, 2.0 * 2, 11.5 / 2, 10.0 * 2]


def test_problems_name_an_annotation_by_its_coco_id_not_its_position(coco_dir):
    """The 4th entry of "annotations" has id 901: users search their file for that (issue 19 item 11)."""
    gt = _gt()
    gt["annotations"].append({"id": 901, "image_id": 12, "category_id": 3, "bbox": [4.0, 4.0, 0.0, 6.0]})
    gt["annotations"].append({"image_id": 12, "category_id": 99, "bbox": [1, 1, 2, 2]})  # no id: its position
    write_coco_json(coco_dir / "bad.json", gt)
    with pytest.raises(ValueError, match=r"bad.json, image 12, annotation id 901: box \[4, 4, 4, 10\]") as err:
        CocoDataset(coco_dir / "images", coco_dir / "bad.json")
    assert "annotation 3" not in str(err.value)
    from anchordet.data.coco import read_coco_records
    from anchordet.data.validate import check_records

    _, problems = check_records(read_coco_records(coco_dir / "bad.json", coco_dir / "images"))
    assert [p.annotation for p in problems] == ["annotation id 901", "annotations[4]"]


@pytest.mark.parametrize("field, value, message", [
    ("iscrowd", "0", "iscrowd must be 0 or 1, got '0'"),  # bool("0") is True: it used to mark the box crowd
    ("iscrowd", "yes", "iscrowd must be 0 or 1, got 'yes'"),
    ("iscrowd", 2, "iscrowd must be 0 or 1, got 2"),
    ("iscrowd", 0.5, "iscrowd must be 0 or 1, got 0.5"),
    ("area", "big", "area must be a number >= 0, got 'big'"),  # used to be dropped silently
    ("area", -3, "area must be a number >= 0, got -3"),
])
def test_iscrowd_and_area_are_checked(coco_dir, field, value, message):
    gt = _gt()
    gt["annotations"][1][field] = value
    write_coco_json(coco_dir / "bad.json", gt)
    with pytest.raises(ValueError, match=f"bad.json, image 10, annotation id 2: {message}"):
        CocoDataset(coco_dir / "images", coco_dir / "bad.json")


def test_iscrowd_takes_0_1_and_booleans(coco_dir):
    gt = _gt()
    gt["annotations"][0]["iscrowd"], gt["annotations"][1]["iscrowd"] = False, True
    del gt["annotations"][2]["iscrowd"]
    write_coco_json(coco_dir / "ok.json", gt)
    ds = CocoDataset(coco_dir / "images", coco_dir / "ok.json")
    assert ds[0].targets.ignore.tolist() == [False, True, False]


def test_duplicate_annotation_ids_are_a_problem_naming_the_id(tmp_path):
    """Issue 28: two annotations with one id were accepted silently (evaluators match objects by id)."""
    import json

    from anchordet.data.coco import read_coco_records
    from anchordet.data.validate import check_records

    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 30, "height": 20},
                     {"id": 3, "file_name": "b.jpg", "width": 30, "height": 20}],
          "categories": [{"id": 1, "name": "dog"}],
          "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]},
                          {"id": 8, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]},
                          {"id": 7, "image_id": 3, "category_id": 1, "bbox": [5, 2, 3, 4]}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(gt))
    clean, problems = check_records(read_coco_records(path, tmp_path), check_files_exist=False)
    assert [(p.kind, str(p)) for p in problems] == [
        ("duplicate-annotation-id", f"{path}, image 3, annotation id 7: annotation id 7 is used twice (first in image 1)")]
    assert [len(image.annotations) for image in clean.images] == [2, 0]
