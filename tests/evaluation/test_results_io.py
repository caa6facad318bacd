"""Reading results / ground-truth JSON: orjson and the standard library give the same values and
the same errors; the column-wise fast paths give the arrays the per-entry parsers give."""
from __future__ import annotations

import gc
import json

import numpy as np
import pytest

from anchordet import files
from anchordet.evaluation import results as R


@pytest.fixture(params=["orjson", "stdlib"])
def parser(request, monkeypatch):
    if request.param == "stdlib":
        monkeypatch.setattr(files, "orjson", None)
    else:
        pytest.importorskip("orjson")
    return request.param


def test_same_values_either_parser(tmp_path, parser):
    data = [{"image_id": 1, "category_id": 2, "bbox": [0.1, 2, 3e-05, 4.5], "score": 0.123456789012345678}]
    (tmp_path / "r.json").write_text(json.dumps(data))
    assert files.load_json(tmp_path / "r.json") == data
    assert gc.isenabled()  # paused only while parsing


def test_nan_reaches_the_entry_check_either_parser(tmp_path, parser):
    """orjson refuses NaN; the stdlib fallback reads it, so the error names the entry, as before."""
    (tmp_path / "r.json").write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": NaN}]')
    loaded = files.load_json(tmp_path / "r.json")
    assert np.isnan(loaded[0]["score"])


@pytest.mark.parametrize("text,message", [("[1, 2", "malformed JSON"), (b"\xff\xfe[]", "not UTF-8 text|malformed JSON")])
def test_malformed_file_is_named(tmp_path, parser, text, message):
    path = tmp_path / "bad.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=f"bad.json: ({message})"):
        files.load_json(path)


def test_fast_paths_equal_the_per_entry_parsers():
    rng = np.random.default_rng(0)
    anns = [{"image_id": int(rng.integers(1, 5)), "category_id": int(rng.integers(1, 3)),
             "bbox": rng.uniform(0, 50, 4).tolist(), **({"area": float(rng.uniform(1, 100))} if i % 2 else {}),
             **({"iscrowd": 1} if i % 7 == 0 else {}), **({"difficult": True} if i % 5 == 0 else {})} for i in range(40)]
    fast = R._annotation_columns(anns)
    slow = R._parse_annotations(anns)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": float(s)}
            for a, s in zip(anns, rng.random(40))]
    for a, b in zip(R._result_columns(dets), R._result_columns_any(dets)):
        np.testing.assert_array_equal(a, b)


def test_numpy_numbers_take_the_slow_path_and_still_work():
    gt = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]}]}
    store = R.DetectionStore(R.GroundTruth.load(gt))
    store.add_results([{"image_id": np.int64(1), "category_id": 1, "bbox": (0, 0, 10, 10), "score": np.float64(0.5)}])
    arrays = store.arrays()
    assert arrays.bbox_xywh.tolist() == [[0, 0, 10, 10]] and arrays.score.tolist() == [0.5]
