import numpy as np
import pytest
from PIL import Image

from anchordet.data.datasets import VocDataset

NAMES = ["cat", "dog", "person"]


def _object(name, box, difficult=0):
    xmin, ymin, xmax, ymax = box
    return (f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated><difficult>{difficult}</difficult>"
            f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")


def _write_voc(root, items):
    """items: {stem: ((height, width), [object xml])}; writes JPEGImages, Annotations, ImageSets."""
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for stem, ((height, width), objects) in items.items():
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><folder>VOC2007</folder><filename>{stem}.jpg</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{''.join(objects)}</annotation>")
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{stem}\n" for stem in items))


def test_reads_boxes_difficult_and_empty_images(tmp_path):
    _write_voc(tmp_path, {
        "000005": ((20, 30), [_object("dog", (1, 2, 10, 12)), _object("person", (5, 5, 30, 20), difficult=1)]),
        "000007": ((16, 16), []),
    })
    ds = VocDataset(tmp_path, "trainval", NAMES)
    assert len(ds) == 2 and ds.class_names == NAMES and ds.category_ids == [0, 1, 2]
    sample = ds[0]
    assert sample.image_id == 0 and sample.orig_size == (20, 30) and sample.file_name.endswith("000005.jpg")
    # VOC indices are 1-based and inclusive: pixels xmin..xmax are edges xmin - 1 .. xmax.
    assert sample.targets.boxes.tolist() == [[0.0, 1.0, 10.0, 12.0], [4.0, 4.0, 30.0, 20.0]]
    assert sample.targets.labels.tolist() == [1, 2] and sample.targets.ignore.tolist() == [False, True]
    assert len(ds[1].targets) == 0
    gt = ds.coco_ground_truth()
    assert gt["images"] == [{"id": 0, "file_name": "000005.jpg", "width": 30, "height": 20},
                            {"id": 1, "file_name": "000007.jpg", "width": 16, "height": 16}]
    difficult = [a for a in gt["annotations"] if a.get("difficult") == 1]
    assert len(difficult) == 1 and difficult[0]["bbox"] == [4.0, 4.0, 26.0, 16.0] and difficult[0]["category_id"] == 2
    assert all(a["iscrowd"] == 0 for a in gt["annotations"])


def test_unknown_class_and_bad_xml(tmp_path):
    _write_voc(tmp_path, {"a": ((20, 30), [_object("horse", (1, 2, 10, 12))]), "b": ((8, 8), [])})
    with pytest.raises(ValueError, match=r"a.xml, image 0, object 1: unknown category 'horse'"):
        VocDataset(tmp_path, "trainval", NAMES)
    (tmp_path / "Annotations" / "b.xml").write_text("<annotation><size>")
    with pytest.warns(UserWarning) as caught:
        ds = VocDataset(tmp_path, "trainval", NAMES, skip_bad_annotations=True)
    messages = [str(w.message) for w in caught]
    assert any("b.xml, image 1: not valid XML" in m for m in messages)
    assert any("unknown category 'horse'" in m for m in messages)
    assert len(ds) == 1 and len(ds[0].targets) == 0
    with pytest.raises(FileNotFoundError, match="test.txt"):
        VocDataset(tmp_path, "test", NAMES)


def test_an_xml_without_size_still_gets_the_outside_the_image_check(tmp_path):
    """<size> missing: the box is checked against the image file's size (header when the dataset
    is built, the decoded image in check-data), not let through (issue 19 item 11)."""
    from anchordet.data.validate import check_image_files, check_records
    from anchordet.data.voc import read_voc_sets

    _write_voc(tmp_path, {"a": ((20, 30), [_object("dog", (1, 2, 10, 12)), _object("cat", (5, 5, 60, 18))])})
    xml = tmp_path / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<size><width>30</width><height>20</height><depth>3</depth></size>", ""))
    with pytest.raises(ValueError, match=r"a.xml, image 0, object 2: box \[4, 4, 60, 18\] .* lies outside the image "
                                         r"\(width 30, height 20\)"):
        VocDataset(tmp_path, "trainval", NAMES)
    records = read_voc_sets([(tmp_path, "trainval")], NAMES)
    clean, problems = check_records(records)
    assert problems == []  # no size stated and no file read: nothing to check against yet
    found, sizes = check_image_files(clean)
    assert sizes == {0: (20, 30)} and [p.kind for p in found] == ["box-outside-image"]
    assert found[0].annotation == "object 2"


def test_07_plus_12_reads_both_sets_as_one_split(tmp_path):
    """The docs/datasets/voc0712.yaml template next to a VOCdevkit with a 2007 and a 2012 set:
    one train split of both (ids running on, names and difficult flags kept), val = 07 test."""
    import shutil
    from pathlib import Path

    from anchordet.data.spec import build_dataset, load_dataset_spec, read_records

    devkit = tmp_path / "VOCdevkit"
    _write_voc(devkit / "VOC2007", {"000005": ((20, 30), [_object("dog", (1, 2, 10, 12))]),
                                    "000007": ((16, 16), [])})
    (devkit / "VOC2007" / "ImageSets" / "Main" / "test.txt").write_text("000007\n")
    _write_voc(devkit / "VOC2012", {"2008_000008": ((24, 18), [_object("cat", (3, 4, 9, 20), difficult=1)])})
    template = Path(__file__).resolve().parents[2] / "docs" / "datasets" / "voc0712.yaml"
    shutil.copy(template, tmp_path / "voc0712.yaml")
    spec = load_dataset_spec(tmp_path / "voc0712.yaml")
    assert spec.splits["train"]["root"] == [(devkit / "VOC2007").resolve(), (devkit / "VOC2012").resolve()]
    train = build_dataset(spec, "train")
    assert len(train) == 3 and train.class_names[:3] == ["aeroplane", "bicycle", "bird"]
    assert [train[i].image_id for i in range(3)] == [0, 1, 2]
    last = train[2]
    assert last.file_name.endswith("VOC2012/JPEGImages/2008_000008.jpg")
    assert last.targets.labels.tolist() == [spec.class_names.index("cat")] and last.targets.ignore.tolist() == [True]
    gt = train.coco_ground_truth()
    assert [i["file_name"] for i in gt["images"]] == ["VOC2007/JPEGImages/000005.jpg", "VOC2007/JPEGImages/000007.jpg",
                                                      "VOC2012/JPEGImages/2008_000008.jpg"]
    assert [a.get("difficult", 0) for a in gt["annotations"]] == [0, 1]
    assert len(build_dataset(spec, "val")) == 1
    assert len(read_records(spec, "train").images) == 3  # what check-data reads


def test_a_list_of_sets_needs_entries_with_image_sets(tmp_path):
    from anchordet.data.spec import load_dataset_spec

    (tmp_path / "a.yaml").write_text("format: voc\nnames: [a]\ntrain: []\n")
    with pytest.raises(ValueError, match=r"a.yaml: key 'train': an empty list"):
        load_dataset_spec(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("format: voc\nnames: [a]\ntrain: [{root: VOC2007, image_set: x}, {root: VOC2012}]\n")
    with pytest.raises(ValueError, match=r"b.yaml: key 'train\[1\].image_set': missing"):
        load_dataset_spec(tmp_path / "b.yaml")


@pytest.mark.parametrize("flag", ["yes", "true", "2", "", "0.5"])
def test_difficult_must_be_0_or_1_like_cocos_iscrowd(tmp_path, flag):
    """Issue 28, item 12: <difficult>yes</difficult> was read as difficult while COCO's
    iscrowd "yes" was refused; both now take 0 or 1 only (absent: 0)."""
    from anchordet.data.coco import read_coco_records
    from anchordet.data.validate import check_records

    _write_voc(tmp_path, {"a": ((20, 30), [_object("dog", (1, 2, 10, 12), difficult=flag),
                                           _object("cat", (1, 2, 10, 12), difficult=" 1 ")])})
    with pytest.raises(ValueError, match=rf"a\.xml, image 0, object 1: object 'dog': <difficult> must be 0 or 1, "
                                         rf"got '{flag}'"):
        VocDataset(tmp_path, "trainval", NAMES)
    with pytest.warns(UserWarning):
        ds = VocDataset(tmp_path, "trainval", NAMES, skip_bad_annotations=True)
    assert ds[0].targets.ignore.tolist() == [True]  # the other object, " 1 " with spaces, is difficult
    coco = tmp_path / "ann.json"
    coco.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "width": 30, "height": 20}], "categories": '
                    '[{"id": 1, "name": "dog"}], "annotations": [{"id": 7, "image_id": 1, "category_id": 1, '
                    f'"bbox": [1, 2, 3, 4], "iscrowd": "{flag}"}}]}}')
    _, problems = check_records(read_coco_records(coco, tmp_path / "JPEGImages"))
    assert [str(p) for p in problems] == [f"{coco}, image 1, annotation id 7: iscrowd must be 0 or 1, got '{flag}'"]


def test_score_reads_the_flags_by_the_same_rule(tmp_path):
    from anchordet.evaluation.results import GroundTruth

    gt = {"images": [{"id": 1, "width": 30, "height": 20}], "categories": [{"id": 1, "name": "dog"}],
          "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "iscrowd": 0},
                          {"id": 8, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "difficult": True}]}
    truth = GroundTruth.load(gt)
    assert truth.iscrowd.tolist() == [False, False] and truth.difficult.tolist() == [False, True]
    for key, value in (("iscrowd", "yes"), ("difficult", "0"), ("iscrowd", 2)):
        gt["annotations"][1] = {**gt["annotations"][1], key: value}
        with pytest.raises(ValueError, match=f"ground truth annotation id 8, image_id 1: {key} must be 0 or 1, "
                                             f"got {value!r}"):
            GroundTruth.load(gt)
        gt["annotations"][1].pop(key)
