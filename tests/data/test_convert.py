"""`anchordet data convert`: round trips through every format (boxes equal within each format's
precision, empty images and ignore flags kept where the format can hold them), the digits
source, and nothing half written."""
import json
import math
import re

import pytest
import torch

from anchordet.cli.main import main
from anchordet.data import convert as convert_module
from anchordet.data.convert import convert
from anchordet.config.schema import DigitsOptions
from anchordet.data.spec import build_dataset, digits_spec, load_dataset_spec
from tests.helpers import write_coco_dataset

SHAPES = [(48, 64), (64, 40), (50, 50), (30, 70), (40, 60), (64, 64)]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Random float boxes; image 3 has a crowd box, images 4 is empty (1-based COCO ids)."""
    folder = tmp_path_factory.mktemp("source")
    return write_coco_dataset(folder, SHAPES, seed=3, names=("cat", "dog", "bird"), crowd_every=3, empty_every=4)


def by_file(dataset) -> dict:
    """{file name: (boxes (N, 4) float64 in original pixels, labels, ignore)} of a split."""
    out = {}
    for index in range(len(dataset)):
        sample = dataset[index]
        t = sample.targets
        order = sorted(range(len(t)), key=lambda k: (t.boxes[k].tolist(), int(t.labels[k])))
        name = re.sub(r"^(train|val)_\d+_", "", sample.file_name.rsplit("/", 1)[-1])  # VOC's renamed stems
        out[name] = (t.boxes[order].double(), t.labels[order].tolist(), t.ignore[order].tolist())
    return out


def rounded(boxes):
    """What the integer formats write: each coordinate to the nearest pixel edge, >= 1 px boxes."""
    r = boxes.round()
    r[:, 2] = torch.maximum(r[:, 2], r[:, 0] + 1)
    r[:, 3] = torch.maximum(r[:, 3], r[:, 1] + 1)
    return r


@pytest.mark.parametrize("to", ["coco", "voc", "yolo", "csv", "deepforest"])
def test_round_trip_from_coco(source, tmp_path, to):
    spec = load_dataset_spec(source)
    counts = convert(spec, to, tmp_path / "out")
    written = load_dataset_spec(tmp_path / "out" / "data.yaml")
    assert written.format == {"deepforest": "csv"}.get(to, to) and written.class_names == ["cat", "dog", "bird"]
    crowd_boxes = 2  # images 3 and 6 (iscrowd on their first box)
    holds_ignore = to in ("coco", "voc")
    assert counts["train"]["dropped_ignored"] == (0 if holds_ignore else crowd_boxes)
    for split in ("train", "val"):
        expected, got = by_file(build_dataset(spec, split)), by_file(build_dataset(written, split))
        assert got.keys() == expected.keys() and len(got) == 6
        for name, (boxes, labels, ignore) in expected.items():
            keep = [k for k in range(len(labels)) if holds_ignore or not ignore[k]]
            boxes, labels, ignore = boxes[keep], [labels[k] for k in keep], [ignore[k] for k in keep]
            got_boxes, got_labels, got_ignore = got[name]
            if to in ("voc", "csv", "deepforest"):
                boxes = rounded(boxes)
                order = sorted(range(len(labels)), key=lambda k: (boxes[k].tolist(), labels[k]))
                boxes, labels, ignore = boxes[order], [labels[k] for k in order], [ignore[k] for k in order]
            tolerance = {"coco": 1e-4, "voc": 0.0, "csv": 0.0, "deepforest": 0.0, "yolo": 1e-6 * 70 + 1e-4}[to]  # float32 targets
            assert got_labels == labels and got_ignore == ignore, name
            torch.testing.assert_close(got_boxes, boxes, rtol=0, atol=tolerance, msg=name)
    empty = [name for name, (boxes, _, _) in by_file(build_dataset(written, "train")).items() if len(boxes) == 0]
    assert "img004.png" in empty  # images without objects are kept by every format


def test_coco_keeps_ids_areas_and_crowd_exactly(source, tmp_path):
    convert(load_dataset_spec(source), "coco", tmp_path / "out")
    original = json.loads((source.parent / "annotations" / "instances_train.json").read_text())
    again = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert [i["id"] for i in again["images"]] == [i["id"] for i in original["images"]]
    assert again["categories"] == original["categories"]
    pairs = list(zip(original["annotations"], again["annotations"]))
    assert len(pairs) == len(original["annotations"]) == len(again["annotations"])
    for a, b in pairs:
        assert (a["image_id"], a["category_id"], a["iscrowd"], a["area"]) == (b["image_id"], b["category_id"],
                                                                            b["iscrowd"], b["area"])
        assert all(math.isclose(u, v, abs_tol=1e-9) for u, v in zip(a["bbox"], b["bbox"]))


def test_voc_to_csv_to_coco_chain_and_difficult(source, tmp_path):
    convert(load_dataset_spec(source), "voc", tmp_path / "voc")
    xml = (tmp_path / "voc" / "Annotations" / "img003.xml").read_text()
    assert "<difficult>1</difficult>" in xml  # the crowd box, as VOC's ignore flag
    convert(load_dataset_spec(tmp_path / "voc" / "data.yaml"), "coco", tmp_path / "coco")
    via_coco = by_file(build_dataset(load_dataset_spec(tmp_path / "coco" / "data.yaml"), "train"))
    via_voc = by_file(build_dataset(load_dataset_spec(tmp_path / "voc" / "data.yaml"), "train"))
    for name in via_voc:
        assert torch.equal(via_coco[name][0], via_voc[name][0]) and via_coco[name][2] == via_voc[name][2]
    convert(load_dataset_spec(tmp_path / "voc" / "data.yaml"), "csv", tmp_path / "csv")
    rows = (tmp_path / "csv" / "train.csv").read_text().splitlines()
    assert "images/train/img004.png,,,,," in rows
    assert (tmp_path / "csv" / "classes.csv").read_text() == "cat,0\ndog,1\nbird,2\n"


def test_digits_to_yolo(tmp_path):
    spec = digits_spec(DigitsOptions(num_train=3, num_val=2, canvas_size=64, digit_size=(16, 30)))
    convert(spec, "yolo", tmp_path / "out")
    written = build_dataset(load_dataset_spec(tmp_path / "out" / "data.yaml"), "val")
    generated = build_dataset(spec, "val")
    assert len(written) == 2 and written.class_names == generated.class_names
    for i in range(2):
        a, b = written[i], generated[i]
        torch.testing.assert_close(a.targets.boxes, b.targets.boxes, rtol=0, atol=64 * 1e-6 + 1e-5)
        assert torch.equal(a.targets.labels, b.targets.labels)
        assert (a.image - b.image).abs().max() <= 0.5 / 255 + 1e-6


def test_nothing_is_half_written(source, tmp_path, monkeypatch):
    def failing(src, out, link):
        (out / "annotations").mkdir()
        (out / "annotations" / "instances_train.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setitem(convert_module.WRITERS, "coco", failing)
    with pytest.raises(OSError, match="disk full"):
        convert(load_dataset_spec(source), "coco", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor the temporary one


def test_cli_writes_links_and_refuses_a_full_folder(source, tmp_path, capsys):
    assert main(["data", "convert", str(source), "--to", "yolo", "--out", str(tmp_path / "out"), "--link"]) == 0
    out = capsys.readouterr().out
    assert "train: 6 images, " in out and "(2 ignored boxes left out: YOLO cannot mark them)" in out
    copy = tmp_path / "out" / "images" / "train" / "img001.png"
    assert copy.stat().st_ino == (source.parent / "images" / "train" / "img001.png").stat().st_ino  # a hard link
    assert main(["data", "convert", str(source), "--to", "voc", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exists and is not an empty folder" in err
    (tmp_path / "empty").mkdir()
    assert main(["data", "convert", str(source), "--to", "csv", "--out", str(tmp_path / "empty")]) == 0
    assert (tmp_path / "empty" / "data.yaml").is_file()


def test_a_bad_source_annotation_stops_the_conversion(tmp_path, capsys):
    folder = tmp_path / "bad"
    data_yaml = write_coco_dataset(folder, [(40, 40)] * 2, seed=0)
    gt = json.loads((folder / "annotations" / "instances_train.json").read_text())
    gt["annotations"][0]["bbox"] = [5, 5, -3, 4]
    (folder / "annotations" / "instances_train.json").write_text(json.dumps(gt))
    assert main(["data", "convert", str(data_yaml), "--to", "csv", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "instances_train.json, image 1, annotation id 1" in err
    assert not (tmp_path / "out").exists()


def test_deepforest_csv_is_written_as_deepforest_reads_it(source, tmp_path):
    """Header row, file names relative to the CSV in the split's folder, ``0,0,0,0,<class>`` for an
    image without objects (img004), integer pixel edges."""
    convert(load_dataset_spec(source), "deepforest", tmp_path / "out")
    lines = (tmp_path / "out" / "train" / "annotations.csv").read_text().splitlines()
    assert lines[0] == "image_path,xmin,ymin,xmax,ymax,label"
    assert "img004.png,0,0,0,0,cat" in lines
    assert all(re.fullmatch(r"img\d+\.png,\d+,\d+,\d+,\d+,(cat|dog|bird)", line) for line in lines[1:])
    assert (tmp_path / "out" / "train" / "img001.png").is_file()
