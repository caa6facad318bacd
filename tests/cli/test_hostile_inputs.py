"""Probe cases of issue 28 kept as tests: YAML and JSON inputs that a hostile file can make
expensive or deep (items 6 and 7), each one line and exit 2 from every command that reads it."""
import json

import pytest
import yaml

from anchordet.cli.main import main
from anchordet.errors import UserError, shown
from anchordet.files import MAX_YAML_DEPTH, MAX_YAML_VALUES, load_json, load_yaml, load_yaml_file

# 318 bytes: 9 ** 8 = 43 million strings once the aliases are expanded (the probe's 337-byte
# file cost 6 GB and 65 s, and printed a 2 GB error line).
BOMB = "\n".join(["a: &a [" + ",".join(['"lol"'] * 9) + "]"]
                 + [f"{b}: &{b} [" + ",".join([f"*{a}"] * 9) + "]" for a, b in zip("abcdefg", "bcdefgh")]
                 + ["format: *h", ""])


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err[:2000]
    assert len(lines[0]) < 400
    return lines[0]


def test_the_bomb_is_what_the_probe_was():
    assert len(BOMB) < 337 and 9 ** 8 > MAX_YAML_VALUES
    assert yaml.safe_load(BOMB)["format"][0][0][0][0][0][0][0] == ["lol"] * 9  # shared, so cheap to build


@pytest.mark.parametrize("command", [["check-data"], ["data", "convert", "--to", "coco", "--out", "OUT"],
                                     ["train", "--config"]])
def test_a_yaml_alias_bomb_is_one_line(tmp_path, capsys, command):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    argv = [str(bomb) if a == "OUT" else a for a in command]
    argv = ([*argv, str(bomb)] if command[0] != "data" else
            ["data", "convert", str(bomb), "--to", "coco", "--out", str(tmp_path / "out")])
    assert main(argv) == 2
    line = one_line_error(capsys)
    assert f"bomb.yaml: YAML expands to more than {MAX_YAML_VALUES} values through its aliases" in line


def test_deep_and_recursive_yaml_are_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.yaml"
    deep.write_text("format: " + "[" * 100000 + "]" * 100000 + "\n")
    assert main(["check-data", str(deep)]) == 2
    assert f"deep.yaml: YAML nested more than {MAX_YAML_DEPTH} levels deep: refused" in one_line_error(capsys)
    endless = tmp_path / "endless.yaml"
    endless.write_text("format: coco\nnames: &a [*a]\n")
    assert main(["check-data", str(endless)]) == 2
    assert "endless.yaml: YAML alias refers to a node that contains it" in one_line_error(capsys)


def test_yaml_bounds_leave_real_files_alone(tmp_path):
    """1000 class names (an ultralytics ImageNet YAML), merge keys and repeated aliases read as
    PyYAML reads them."""
    text = yaml.safe_dump({"names": {i: f"class{i}" for i in range(1000)}, "path": "."})
    text += "base: &base {lr: 0.01, steps: [8, 11]}\nrun: {<<: *base, lr: 0.02}\nagain: [*base, *base]\n"
    assert load_yaml(text, "x.yaml") == yaml.safe_load(text)
    invalid = tmp_path / "bad.yaml"
    invalid.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(UserError) as info:
        load_yaml_file(invalid)
    assert str(info.value).startswith(f"{invalid}: not valid YAML (") and "\n" not in str(info.value)


def test_a_huge_yaml_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import anchordet.files as files

    monkeypatch.setattr(files, "MAX_YAML_BYTES", 100)
    big = tmp_path / "big.yaml"
    big.write_text("names: [" + ", ".join(["x"] * 100) + "]\n")
    with pytest.raises(UserError, match=r"big\.yaml: 3\d\d bytes of YAML; .* \(at most 100\)"):
        load_yaml_file(big)


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1020, 100000])
def test_deeply_nested_json_is_one_line_in_check_data_and_score(tmp_path, capsys, depth):
    """100000 deep: more than the parsers go (RecursionError before); 1020 deep: orjson reads
    it, and the messages that quote the entry once raised RecursionError in repr."""
    gt = {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}], "annotations": [],
          "categories": [{"id": 1, "name": "a"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    deep = tmp_path / "deep.json"
    deep.write_text('{"images": [' + deep_json(depth) + '], "annotations": [], "categories": [{"id": 1, "name": "a"}]}')
    assert main(["check-data", str(deep)]) in (1, 2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and len(captured.out + captured.err) < 5000
    results = tmp_path / "results.json"
    results.write_text('[{"image_id": 1, "category_id": 1, "bbox": ' + deep_json(depth) + ', "score": 0.5}]')
    assert main(["score", str(tmp_path / "gt.json"), str(results)]) == 2
    line = one_line_error(capsys)
    assert ("nested more than about 1000 levels deep" in line if depth > 1024
            else "bbox must be a list of 4 numbers [x, y, w, h], got [[[[[...]]]]]" in line)


def test_load_json_names_the_file_of_a_too_deep_value(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text(deep_json(100000))
    with pytest.raises(UserError, match=r"deep\.json: JSON nested more than about 1000 levels deep"):
        load_json(path)


def test_shown_is_repr_for_ordinary_values_and_bounded_for_others():
    for value in ({"id": 1, "file_name": "a.jpg", "bbox": [1, 2.5, None]}, (1,), [], {}, "x", [1.0, float("nan")]):
        assert shown(value) == repr(value)
    deep = []
    for _ in range(5000):
        deep = [deep]
    assert shown(deep) == "[[[[[...]]]]]"
    assert len(shown(list(range(10 ** 6)))) < 260 and shown("x" * 10 ** 6).endswith("...")


# ------------------------------------------------------------------ item 11: library warnings
def test_pil_decompression_bomb_warning_never_comes_before_our_line(tmp_path):
    """A 10000 x 10000 PNG (100 M pixels, above PIL's 89.5 M warning and our 67 M limit): our
    error alone; with a caller's limit above PIL's, PIL's warning still reaches the caller."""
    import warnings

    from PIL import Image

    from anchordet.data.image_io import ImageReadError, image_size, load_image

    big = tmp_path / "big.png"
    Image.new("1", (10000, 10000)).save(big)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ImageReadError, match=r"big\.png: 10000x10000 = 100000000 pixels exceeds the limit"):
            load_image(big)
    assert not seen
    with pytest.warns(Image.DecompressionBombWarning):
        assert image_size(big, max_pixels=10 ** 9) == (10000, 10000)


def test_check_data_on_huge_csv_values_prints_no_numpy_warning(tmp_path, capsys):
    """Coordinates near 1e308 made sqrt(area) infinite, and numpy's percentile of several
    infinities warned 'invalid value encountered in scalar subtract' and printed NaN."""
    import warnings

    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    (tmp_path / "train.csv").write_text("a.png,0,0,1e308,1e308,cat\na.png,-1e308,-1e308,1e308,1e308,cat\n"
                                        "a.png,1,1,5,5,cat\n")
    (tmp_path / "d.yaml").write_text("format: csv\nnames: [cat]\ntrain: train.csv\n")
    for options, summary in (([], "boxes: 1 "), (["--no-decode"], "2 boxes of infinite size not measured")):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            main(["check-data", str(tmp_path / "d.yaml"), *options])
        captured = capsys.readouterr()
        assert not seen and not captured.err
        assert summary in captured.out and "nan" not in captured.out
        assert "min 4.0, p5 4.0, p50 4.0, p95 4.0, max 4.0" in captured.out


def test_the_command_line_prints_any_other_warning_as_one_line(capsys):
    import warnings

    from anchordet.cli.main import _one_line_skip_warnings

    _one_line_skip_warnings("check-data")
    warnings.showwarning(RuntimeWarning("invalid value encountered\nin scalar subtract"), RuntimeWarning,
                         "/v/lib/python3.11/site-packages/numpy/lib/_function_base_impl.py", 4596)
    assert capsys.readouterr().err == ("anchordet check-data: warning: invalid value encountered in scalar "
                                       "subtract (RuntimeWarning from numpy)\n")
