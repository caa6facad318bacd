"""Image paths that annotation and list files write may not leave the dataset's folder (issue 28,
item 1), and `data convert` copies only files that are images.

The probe: a COCO ``file_name`` of ``../../../../../../etc/passwd`` (or a VOC ``<filename>`` of
``/etc/passwd``) converted with exit 0 and the output held the password file as a 128x128
"image". Here a "secret" text file beside the dataset plays /etc/passwd."""
import json
import os

import pytest
import yaml
from PIL import Image

from anchordet.cli.main import main
from anchordet.data.convert import convert
from anchordet.data.spec import build_dataset, load_dataset_spec, read_records
from anchordet.data.validate import check_records
from anchordet.errors import UserError

SECRET = "root:x:0:0:root:/root:/bin/bash\n"


def coco_dataset(folder, file_names, allow=None):
    """A COCO dataset under ``folder``: one 16x16 PNG, images listed under ``file_names`` (each a
    128x128 image with one box, as the probe's), data.yaml; returns the YAML path."""
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (128, 128), (40, 80, 120)).save(folder / "images" / "good.png")
    images = [{"id": i + 1, "file_name": name, "width": 128, "height": 128} for i, name in enumerate(file_names)]
    annotations = [{"id": 10 + i, "image_id": i + 1, "category_id": 1, "bbox": [4, 4, 20, 20], "area": 400,
                    "iscrowd": 0} for i in range(len(file_names))]
    (folder / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                 "categories": [{"id": 1, "name": "a"}]}))
    spec = {"format": "coco", "names": ["a"], "train": {"images": "images", "annotations": "ann.json"}}
    if allow is not None:
        spec["allow_outside_root"] = allow
    (folder / "data.yaml").write_text(yaml.safe_dump(spec))
    return folder / "data.yaml"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET)
    return path


@pytest.mark.parametrize("how", ["climbing", "absolute"])
def test_convert_refuses_a_file_name_outside_the_dataset_and_writes_nothing(tmp_path, secret, how):
    name = "../../../../../../../../../.." + str(secret) if how == "climbing" else str(secret)
    data = coco_dataset(tmp_path / "ds", ["good.png", name])
    with pytest.raises(UserError) as info:
        convert(load_dataset_spec(data), "coco", tmp_path / "out")
    message = str(info.value)
    assert "ann.json, image 2: image path " + str(secret) + " lies outside the dataset's folder" in message
    assert "allow_outside_root: true" in message
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial*"))


def test_the_cli_says_it_in_one_line_and_exit_2(tmp_path, secret, capsys):
    data = coco_dataset(tmp_path / "ds", ["good.png", "../../secret"])
    assert main(["data", "convert", str(data), "--to", "yolo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lies outside the dataset's folder" in err and str(secret) in err
    assert not (tmp_path / "out").exists()


def test_check_data_lists_it_and_training_refuses_or_skips_it(tmp_path, secret, capsys):
    data = coco_dataset(tmp_path / "ds", ["good.png", str(secret)])
    assert main(["check-data", str(data)]) == 1
    out = capsys.readouterr().out
    assert f"[outside-dataset] {tmp_path / 'ds' / 'ann.json'}, image 2: image path {secret} lies outside" in out
    spec = load_dataset_spec(data)
    with pytest.raises(UserError, match="image 2: image path .* lies outside"):
        build_dataset(spec, "train")
    with pytest.warns(UserWarning, match="skipped: .*image 2: image path .* lies outside"):
        dataset = build_dataset(spec, "train", skip_bad_annotations=True)
    assert len(dataset) == 1 and dataset[0].image_id == 1


def test_a_voc_filename_outside_is_refused(tmp_path, secret):
    root = tmp_path / "VOC"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    (root / "ImageSets/Main/train.txt").write_text("x\n")
    (root / "Annotations/x.xml").write_text(
        f"<annotation><filename>{secret}</filename><size><width>128</width><height>128</height></size>"
        "<object><name>a</name><difficult>0</difficult><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>20</xmax>"
        "<ymax>20</ymax></bndbox></object></annotation>")
    (tmp_path / "voc.yaml").write_text(yaml.safe_dump({"format": "voc", "root": "VOC", "names": ["a"],
                                                        "train": {"image_set": "train"}}))
    with pytest.raises(UserError, match=r"x\.xml, image 0: image path .*secret lies outside"):
        convert(load_dataset_spec(tmp_path / "voc.yaml"), "coco", tmp_path / "out")


def test_yolo_list_and_csv_rows_may_not_leave_but_absolute_paths_inside_are_fine(tmp_path):
    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (32, 32)).save(ds / "images" / name)
    Image.new("RGB", (32, 32)).save(tmp_path / "elsewhere.png")
    (ds / "train.txt").write_text(f"./images/a.png\n{ds / 'images' / 'b.png'}\n../elsewhere.png\n")
    (ds / "yolo.yaml").write_text(yaml.safe_dump({"path": ".", "train": "train.txt", "names": ["a"]}))
    clean, problems = check_records(read_records(load_dataset_spec(ds / "yolo.yaml"), "train"))
    assert [p.kind for p in problems] == ["outside-dataset"] and problems[0].image_id == 2
    assert [r.path.name for r in clean.images] == ["a.png", "b.png"]

    (ds / "train.csv").write_text(f"images/a.png,1,1,9,9,a\n{ds / 'images' / 'b.png'},,,,,\n"
                                  f"{tmp_path / 'elsewhere.png'},,,,,\n")
    (ds / "csv.yaml").write_text(yaml.safe_dump({"format": "csv", "names": ["a"], "train": "train.csv"}))
    clean, problems = check_records(read_records(load_dataset_spec(ds / "csv.yaml"), "train"))
    assert [(p.kind, p.image_id) for p in problems] == [("outside-dataset", 2)]


def test_the_yaml_root_and_a_linked_images_folder_count_as_inside(tmp_path):
    """A split's images may sit beside its images folder under the YAML's root, and an images
    folder that is a link to another disk is inside (checked before links are followed)."""
    disk = tmp_path / "big_disk"
    disk.mkdir()
    Image.new("RGB", (128, 128)).save(disk / "linked.png")
    data = coco_dataset(tmp_path / "ds", ["good.png", "../shared/s.png", "linked/linked.png"])
    (tmp_path / "ds" / "shared").mkdir()
    Image.new("RGB", (128, 128)).save(tmp_path / "ds" / "shared" / "s.png")
    os.symlink(disk, tmp_path / "ds" / "images" / "linked")
    assert len(build_dataset(load_dataset_spec(data), "train")) == 3


def test_allow_outside_root_reads_it_but_convert_still_copies_images_only(tmp_path, secret):
    outside_png = tmp_path / "photo.png"
    Image.new("RGB", (128, 128), (1, 2, 3)).save(outside_png)
    data = coco_dataset(tmp_path / "ds", ["good.png", str(outside_png)], allow=True)
    convert(load_dataset_spec(data), "coco", tmp_path / "out")
    assert (tmp_path / "out" / "images" / "train" / "photo.png").read_bytes() == outside_png.read_bytes()

    data = coco_dataset(tmp_path / "ds2", ["good.png", str(secret)], allow=True)
    with pytest.raises(UserError, match=r"ann\.json, image 2: .*secret: not a readable image .*; not copied"):
        convert(load_dataset_spec(data), "coco", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_convert_never_copies_a_file_inside_the_dataset_that_is_not_an_image(tmp_path):
    data = coco_dataset(tmp_path / "ds", ["good.png", "notes.png"])
    (tmp_path / "ds" / "images" / "notes.png").write_text(SECRET)
    with pytest.raises(UserError, match=r"ann\.json, image 2: .*notes\.png: not a readable image .*; not copied"):
        convert(load_dataset_spec(data), "voc", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_allow_outside_root_must_be_a_boolean(tmp_path):
    data = coco_dataset(tmp_path / "ds", ["good.png"], allow="yes")
    with pytest.raises(UserError, match="key 'allow_outside_root': must be true or false, got 'yes'"):
        load_dataset_spec(data)
