from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anchordet.data.validate import (
    AnnotationRecord, ImageRecord, RecordSet, check_annotation, check_image_files, check_records, summarize,
)


def _image(size=(20, 30), boxes=(), path=Path("img.png"), image_id=1):
    anns = [AnnotationRecord(i, category, box) for i, (category, box) in enumerate(boxes)]
    return ImageRecord(image_id, path, size, anns, "ann.json")


@pytest.mark.parametrize("box, kind", [
    ((0, 0, 30, 20), None),
    ((-1, -1, 31, 21), None),  # within the 1-pixel tolerance
    ((-1.5, 0, 10, 10), "box-outside-image"),
    ((0, 0, 31.5, 10), "box-outside-image"),
    ((5, 5, 5, 9), "degenerate-box"),
    ((5, 9, 8, 2), "degenerate-box"),
    ((0, float("inf"), 1, 1), "non-finite-box"),
])
def test_check_annotation(box, kind):
    image = _image(boxes=[(7, box)])
    found = check_annotation(image.annotations[0], image, {7: 0}, normalized=False)
    assert (found.kind if found else None) == kind
    if found:
        assert str(found).startswith("ann.json, image 1, annotation 0: ")


def test_unknown_category_and_normalized_frame():
    image = _image(size=None, boxes=[(3, (0.1, 0.1, 0.5, 0.5)), (0, (0.5, 0.5, 1.0005, 1.0)), (0, (0.5, 0.5, 1.01, 1))])
    label_of = {0: 0, 1: 1}
    found = [check_annotation(a, image, label_of, normalized=True) for a in image.annotations]
    assert found[0].kind == "unknown-category" and "unknown category 3 (known: 0, 1)" in found[0].message
    assert found[1] is None and found[2].kind == "box-outside-image"


def test_check_records_drops_bad_parts(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    records = RecordSet([
        _image(boxes=[(0, (1, 1, 5, 5)), (0, (5, 5, 2, 9))], path=tmp_path / "a.png", image_id=1),
        _image(path=tmp_path / "a.png", image_id=1),
        _image(path=tmp_path / "missing.png", image_id=2),
    ], ["x"], [0], {0: 0})
    clean, problems = check_records(records)
    assert [p.kind for p in problems] == ["degenerate-box", "duplicate-image-id", "missing-image"]
    assert "image id 1 is used twice (a.png and a.png)" in problems[1].message
    assert len(clean.images) == 1 and len(clean.images[0].annotations) == 1


def test_check_image_files_truncated_and_size_mismatch(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 20 x 30, viewed 30 x 20
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "rot.png", exif=exif)
    records = RecordSet([_image((20, 30), path=tmp_path / "ok.jpg", image_id=1),
                         _image((20, 30), path=tmp_path / "cut.jpg", image_id=2),
                         _image((20, 30), path=tmp_path / "rot.png", image_id=3)], ["x"], [0], {0: 0})
    problems, sizes = check_image_files(records)
    assert [(p.kind, p.image_id) for p in problems] == [("unreadable-image", 2), ("size-mismatch", 3)]
    assert "cut.jpg" in problems[0].message and "truncated" in problems[0].message.lower()
    assert "20x30 but rot.png is 30x20 (the annotation ignores the file's EXIF orientation" in problems[1].message
    assert sizes == {1: (20, 30), 3: (30, 20)}


def test_summary_counts_and_sizes():
    # Sides (sqrt of area): 4 (small), sqrt(40 * 40) = 40 (medium), sqrt(100 * 100) = 100 (large).
    records = RecordSet([
        _image((200, 200), [(0, (0, 0, 4, 4)), (1, (0, 0, 40, 40))], image_id=1),
        _image((200, 200), [(1, (0, 0, 100, 100))], image_id=2),
        _image((200, 200), [], image_id=3),
    ], ["a", "b"], [0, 1], {0: 0, 1: 1})
    records.images[1].annotations[0].ignore = True
    summary = summarize(records)
    assert summary.num_images == 3 and summary.num_empty == 1 and summary.num_ignored == 1
    assert summary.boxes_per_class == {"a": 1, "b": 2}
    assert summary.size_counts == {"small": 1, "medium": 1, "large": 1}
    assert summary.side_percentiles["min"] == 4 and summary.side_percentiles["p50"] == 40
    assert summary.side_percentiles["max"] == 100
    normalized = RecordSet([_image(None, [(0, (0.0, 0.0, 0.5, 0.25))], image_id=1)], ["a"], [0], {0: 0}, True)
    assert summarize(normalized).num_unsized == 1
    # Measured in pixels once the size (h 80, w 40) is known: sqrt((0.5 * 40) * (0.25 * 80)) = 20.
    assert summarize(normalized, {1: (80, 40)}).side_percentiles["max"] == pytest.approx(20.0)
