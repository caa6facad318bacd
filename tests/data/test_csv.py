"""The CSV format of yhenon/pytorch-retinanet: its README's example, images without objects,
class ids, the dataset YAML, and errors naming the file and the line."""
import numpy as np
import pytest
from PIL import Image

from anchordet.cli.main import main
from anchordet.data.csv_format import read_class_list, read_csv_records
from anchordet.data.datasets import CsvDataset
from anchordet.data.spec import build_dataset, load_dataset_spec
from anchordet.errors import UserError

# yhenon/pytorch-retinanet README ("CSV datasets"), with paths relative to the CSV file
ANNOTATIONS = """imgs/img_001.jpg,837,346,981,456,cow
imgs/img_002.jpg,215,312,279,391,cat
imgs/img_002.jpg,22,5,89,84,bird
imgs/img_003.jpg,,,,,
"""
CLASSES = "cow,0\ncat,1\nbird,2\n"


@pytest.fixture
def csv_dir(tmp_path):
    (tmp_path / "imgs").mkdir()
    for name in ("img_001.jpg", "img_002.jpg", "img_003.jpg", "img_004.png"):
        Image.fromarray(np.zeros((500, 1000, 3), np.uint8)).save(tmp_path / "imgs" / name)
    (tmp_path / "train.csv").write_text(ANNOTATIONS + "imgs/img_004.png\n")  # a path alone: no objects either
    (tmp_path / "classes.csv").write_text(CLASSES)
    return tmp_path


def test_reads_the_readme_example(csv_dir):
    names, ids = read_class_list(csv_dir / "classes.csv")
    assert names == ["cow", "cat", "bird"] and ids == [0, 1, 2]
    ds = CsvDataset(csv_dir / "train.csv", names, ids)
    assert len(ds) == 4 and ds.class_names == names and ds.category_ids == [0, 1, 2]
    first, second = ds[0], ds[1]
    assert first.image_id == 0 and first.file_name.endswith("imgs/img_001.jpg") and first.orig_size == (500, 1000)
    assert first.targets.boxes.tolist() == [[837.0, 346.0, 981.0, 456.0]] and first.targets.labels.tolist() == [0]
    assert second.targets.boxes.tolist() == [[215.0, 312.0, 279.0, 391.0], [22.0, 5.0, 89.0, 84.0]]
    assert second.targets.labels.tolist() == [1, 2]
    assert len(ds[2].targets) == 0 and len(ds[3].targets) == 0  # "path,,,,," and "path": images without objects
    gt = ds.coco_ground_truth()
    assert [i["file_name"] for i in gt["images"]] == ["imgs/img_001.jpg", "imgs/img_002.jpg", "imgs/img_003.jpg",
                                                      "imgs/img_004.png"]
    assert gt["categories"] == [{"id": 0, "name": "cow"}, {"id": 1, "name": "cat"}, {"id": 2, "name": "bird"}]
    assert gt["annotations"][1]["bbox"] == [215.0, 312.0, 64.0, 79.0]


def test_class_ids_order_the_labels(csv_dir):
    (csv_dir / "classes.csv").write_text("person,7\ncow,2\n")
    assert read_class_list(csv_dir / "classes.csv") == (["cow", "person"], [2, 7])


def test_the_dataset_yaml(csv_dir):
    (csv_dir / "data.yaml").write_text("format: csv\nclasses: classes.csv\ntrain: train.csv\n"
                                       "val: {annotations: train.csv, images: .}\n")
    spec = load_dataset_spec(csv_dir / "data.yaml")
    assert spec.format == "csv" and spec.class_names == ["cow", "cat", "bird"]
    assert len(build_dataset(spec, "train")) == 4 and build_dataset(spec, "val").category_ids == [0, 1, 2]
    (csv_dir / "names.yaml").write_text("format: csv\nnames: [cow, cat, bird]\ntrain: train.csv\n")
    assert build_dataset(load_dataset_spec(csv_dir / "names.yaml"), "train").category_ids == [0, 1, 2]
    (csv_dir / "both.yaml").write_text("format: csv\nnames: [cat, cow, bird]\nclasses: classes.csv\ntrain: train.csv\n")
    with pytest.raises(ValueError, match=r"both.yaml: key 'names': \['cat', 'cow', 'bird'\] differ from the class list"):
        load_dataset_spec(csv_dir / "both.yaml")
    (csv_dir / "none.yaml").write_text("format: csv\ntrain: train.csv\n")
    with pytest.raises(ValueError, match=r"none.yaml: key 'classes': required for format csv"):
        load_dataset_spec(csv_dir / "none.yaml")
    assert main(["check-data", str(csv_dir / "data.yaml"), "--split", "train"]) == 0


@pytest.mark.parametrize("row, message", [
    ("imgs/img_001.jpg,1,2,3", r"train.csv, image 0, line 5: expected 'path,x1,y1,x2,y2,class_name' \(6 fields\) "
                               r"or a path alone, got 4 fields: 'imgs/img_001.jpg,1,2,3'"),
    ("imgs/img_009.jpg,1,2,x,4,cow", r"train.csv, image 3, line 5: x1, y1, x2, y2 must be numbers"),
    ("imgs/img_001.jpg,1,2,3,4,", r"train.csv, image 0, line 5: no class name"),
    ("imgs/img_001.jpg,1,2,3,4,horse", r"train.csv, image 0, line 5: unknown category 'horse'"),
    ("imgs/img_001.jpg,10,2,3,4,cow", r"train.csv, image 0, line 5: box \[10, 2, 3, 4\] .* is degenerate.*"
                                      r"written as line 5 'imgs/img_001.jpg,10,2,3,4,cow'"),
])
def test_bad_rows_name_the_file_and_line(csv_dir, row, message):
    (csv_dir / "train.csv").write_text(ANNOTATIONS + row + "\n")
    with pytest.raises(ValueError, match=message):
        CsvDataset(csv_dir / "train.csv", ["cow", "cat", "bird"])


def test_bad_rows_can_be_skipped_with_a_warning(csv_dir):
    (csv_dir / "train.csv").write_text(ANNOTATIONS + "imgs/img_001.jpg,1,2,3\n")
    with pytest.warns(UserWarning, match="line 5: expected"):
        ds = CsvDataset(csv_dir / "train.csv", ["cow", "cat", "bird"], skip_bad_annotations=True)
    assert len(ds) == 3 and len(ds[0].targets) == 1


@pytest.mark.parametrize("text, message", [
    ("cow,0\ncat\n", r"classes.csv, line 2: expected 'class_name,id', got 'cat'"),
    ("cow,0\ncat,one\n", r"classes.csv, line 2: class id 'one' is not an integer"),
    ("cow,0\ncat,0\n", r"classes.csv, line 2: class id 0 is used twice \('cow', 'cat'\)"),
    ("cow,0\n\ncow,1\n", r"classes.csv, line 3: class name 'cow' is listed twice"),
    ("\n", r"classes.csv: no classes"),
])
def test_bad_class_lists_name_the_line(csv_dir, text, message):
    (csv_dir / "classes.csv").write_text(text)
    with pytest.raises(UserError, match=message):
        read_class_list(csv_dir / "classes.csv")


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="CSV annotations file not found"):
        read_csv_records(tmp_path / "no.csv", ["a"])
    with pytest.raises(FileNotFoundError, match="CSV class list not found"):
        read_class_list(tmp_path / "no.csv")


# DeepForest's variant (its README's annotation example: a header, image_path relative to the
# CSV's folder, labels by name), with a pandas index column and an image without objects.
DEEPFOREST = """,image_path,xmin,ymin,xmax,ymax,label
0,OSBS_029.png,203,67,227,90,Tree
1,OSBS_029.png,256,99,288,140,Tree
2,OSBS_029.png,166,253,225,304,Snag
3,empty.png,0,0,0,0,Tree
"""


@pytest.fixture
def deepforest_dir(tmp_path):
    for name in ("OSBS_029.png", "empty.png"):
        Image.fromarray(np.zeros((400, 400, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "annotations.csv").write_text(DEEPFOREST)
    (tmp_path / "data.yaml").write_text("format: csv\nnames: [Tree, Snag]\ntrain: annotations.csv\n")
    return tmp_path


def test_reads_deepforest_csv(deepforest_dir):
    ds = build_dataset(load_dataset_spec(deepforest_dir / "data.yaml"), "train")
    assert len(ds) == 2 and ds.class_names == ["Tree", "Snag"]
    trees, empty = ds[0], ds[1]
    assert trees.targets.boxes.tolist() == [[203, 67, 227, 90], [256, 99, 288, 140], [166, 253, 225, 304]]
    assert trees.targets.labels.tolist() == [0, 0, 1]
    assert empty.file_name.endswith("empty.png") and len(empty.targets) == 0  # 0,0,0,0: no objects
    annotation_ids = [a.index for a in ds.records.images[0].annotations]
    assert annotation_ids == [2, 3, 4]  # the file's line numbers (the header is line 1)


def test_deepforest_rows_of_the_wrong_width_name_the_line(deepforest_dir):
    (deepforest_dir / "annotations.csv").write_text(DEEPFOREST + "4,OSBS_029.png,1,2,3\n")
    with pytest.raises(UserError, match=r"annotations.csv.*line 6.*header names 7 columns, this row has 5"):
        CsvDataset(deepforest_dir / "annotations.csv", ["Tree", "Snag"])


def test_zero_box_without_a_header_is_still_an_error(csv_dir):
    """Only DeepForest's variant (a header) reads 0,0,0,0 as 'no objects'; in yhenon's format
    that row is a degenerate box, reported as before."""
    (csv_dir / "train.csv").write_text("imgs/img_001.jpg,0,0,0,0,cow\n")
    with pytest.raises(UserError, match="line 1"):
        CsvDataset(csv_dir / "train.csv", ["cow", "cat", "bird"])
