"""anchordet.tiling and ``Predictor.predict(..., tile=)``: windows, merging across seams, every family."""
import numpy as np
import pytest
import tifffile
import torch

import anchordet
from anchordet.errors import UserError
from anchordet.structures.targets import Detections
from anchordet.tiling import (TensorSource, TileOptions, overlapping_windows, predict_tiled, reduced_image,
                              tile_windows)
from helpers import TINY_SSD, spread_faster_rcnn_heads, write_tiny_weights


@pytest.mark.parametrize("height,width,size,overlap", [(1000, 1300, 256, 0.2), (512, 512, 256, 0.0),
                                                       (100, 700, 128, 0.5), (257, 255, 256, 0.25), (9, 40, 16, 0.9)])
def test_windows_cover_the_image_and_the_last_ones_are_flush_with_the_edges(height, width, size, overlap):
    windows = tile_windows(height, width, size, overlap)
    covered = np.zeros((height, width), dtype=int)
    for x0, y0, x1, y1 in windows:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert x1 - x0 == min(size, width) and y1 - y0 == min(size, height)  # every window whole
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    assert max(x1 for *_, x1, _ in windows) == width and max(y1 for *_, y1 in windows) == height
    xs = sorted({x0 for x0, *_ in windows})
    shared = [a + size - b for a, b in zip(xs, xs[1:])]  # pixels neighbouring columns share
    assert all(s >= round(size * overlap) for s in shared)
    assert len(set(windows)) == len(windows)


def test_an_image_smaller_than_a_tile_is_one_window():
    assert tile_windows(50, 70, 128, 0.2) == [(0, 0, 70, 50)]
    assert overlapping_windows([(0, 0, 70, 50)]) == []


def oracle(objects, labels):
    """A detector that sees ``objects`` (image pixels) exactly: in a crop, each visible part,
    clipped, scored by the share of the object it shows (a cut object scores lower)."""
    def detect_at(offsets):
        def detect(crops):
            out = []
            for (x0, y0), crop in zip(offsets, crops):
                h, w = crop.shape[-2:]
                clipped = objects.clone()
                clipped[:, 0::2] = (objects[:, 0::2] - x0).clamp(0, w)
                clipped[:, 1::2] = (objects[:, 1::2] - y0).clamp(0, h)
                area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
                share = area / ((objects[:, 2] - objects[:, 0]) * (objects[:, 3] - objects[:, 1]))
                keep = share > 0
                order = share[keep].argsort(descending=True, stable=True)
                out.append(Detections(clipped[keep][order], share[keep][order], labels[keep][order]))
            return out
        return detect
    return detect_at


class Recording:
    """A ``detect`` for ``predict_tiled`` that finds each crop's offset from its pixels (the
    image's pixel values encode x and y), then calls ``oracle``'s detector."""

    def __init__(self, objects, labels):
        self.make = oracle(objects, labels)
        self.batches = []

    def __call__(self, crops):
        self.batches.append(len(crops))
        offsets = [(int(c[0, 0, 0]), int(c[1, 0, 0])) for c in crops]
        return self.make(offsets)(crops)


def coordinate_image(height, width):
    """Channel 0 holds x, channel 1 y: a crop's first pixel names its offset."""
    ys, xs = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    return torch.stack([xs, ys, torch.zeros_like(xs)])


@pytest.mark.parametrize("merge", ["nms", "nmm"])
def test_an_object_cut_by_a_seam_gives_one_box(merge):
    # windows of 100 px every 80 px: x starts 0, 80, 160; objects straddling x = 100 and x = 180 and a corner
    objects = torch.tensor([[90., 10, 120, 40], [170, 50, 195, 70], [95, 95, 115, 110], [5, 5, 20, 20]])
    labels = torch.tensor([1, 2, 1, 0])
    detect = Recording(objects, labels)
    source = TensorSource(coordinate_image(260, 260))
    merged = predict_tiled(source, detect, TileOptions(100, 0.2, merge=merge, batch_size=4))
    assert detect.batches == [4, 4, 1]  # 9 windows, 4 at a time
    assert len(merged) == len(objects)
    order = merged.boxes[:, 0].argsort()
    torch.testing.assert_close(merged.boxes[order], objects[objects[:, 0].argsort()])
    assert merged.labels[order].tolist() == labels[objects[:, 0].argsort()].tolist()
    # without the merge each cut object comes back in pieces: the test above depends on merging
    unmerged = predict_tiled(source, detect, TileOptions(100, 0.2, merge=merge, threshold=1.0))
    assert len(unmerged) > len(objects)


def test_nmm_joins_the_halves_of_an_object_no_tile_holds_whole():
    # windows x 0..100, 90..190, 100..200: the object 80..130 is never whole; NMM gives its enclosing box
    objects, labels = torch.tensor([[80., 20, 130, 60]]), torch.tensor([0])
    source = TensorSource(coordinate_image(100, 200))
    merged = predict_tiled(source, Recording(objects, labels), TileOptions(100, 0.1, merge="nmm", threshold=0.0))
    torch.testing.assert_close(merged.boxes, objects)


def test_full_pass_adds_the_whole_image_reduced():
    objects, labels = torch.tensor([[10., 10, 290, 190]]), torch.tensor([0])
    calls = []

    def detect(crops):
        calls.append([tuple(c.shape[-2:]) for c in crops])
        if crops[0].shape[-1] == 300:  # the whole image: the object, whole
            return [Detections(objects.clone(), torch.tensor([0.9]), labels)]
        return [Detections.empty() for _ in crops]

    source = TensorSource(torch.rand(3, 200, 300))
    merged = predict_tiled(source, detect, TileOptions(128, 0.2, full=True))
    assert calls[-1] == [(200, 300)]
    torch.testing.assert_close(merged.boxes, objects)


def test_reduced_image_averages_blocks_and_scales_back():
    image = torch.rand(3, 70, 50)
    reduced, factor = reduced_image(TensorSource(image), longest=20)
    assert factor == 4.0 and reduced.shape == (3, 18, 13)
    torch.testing.assert_close(reduced[:, 2, 3], image[:, 8:12, 12:16].mean(dim=(1, 2)))
    torch.testing.assert_close(reduced[:, 17, 12], image[:, 68:70, 48:50].mean(dim=(1, 2)))  # the edge block


def test_tile_options_are_checked():
    from anchordet.tiling import tile_options

    assert tile_options(None) is None
    with pytest.raises(UserError, match="tile_merge given without tile"):
        tile_options(None, tile_merge="nmm")
    for bad in (dict(size=0), dict(size=64, overlap=1.0), dict(size=64, overlap=float("nan")),
                dict(size=64, merge="wbf"), dict(size=64, metric="giou"), dict(size=64, batch_size=0)):
        with pytest.raises(UserError):
            TileOptions(**bad)


# ------------------------------------------------------------------------------ every family
def retinanet_weights(path):
    write_tiny_weights(path, args=dict(depth=18, num_classes=10, backbone_width=8, fpn_channels=16, head_channels=16,
                                       head_num_convs=1, frozen_bn=False, score_thresh=0.005, max_detections=50))


def ssd_weights(path):
    model = write_tiny_weights(path, "ssd_vgg16", args={**TINY_SSD, "score_thresh": 0.05})
    return model


def faster_rcnn_weights(path):
    import json

    from anchordet.config.schema import ModelConfig
    from anchordet.weights_file import save_weights

    config = ModelConfig("faster_rcnn_resnet_c4", dict(
        depth=18, num_classes=10, backbone_width=8, roi_pool="align", roi_output_size=6, anchor_sizes=[16, 32, 64],
        rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=40, box_score_thresh=0.05, box_detections_per_img=30))
    torch.manual_seed(0)
    model = spread_faster_rcnn_heads(config.build().eval())
    info = {"eval_transform": "resize", "min_size": 96, "max_size": 96, "fixed_size": 0,
            "class_names": [f"d{i}" for i in range(10)], "category_ids": list(range(10))}
    save_weights(path, model, config, {"anchordet_inference": json.dumps(info)})


FAMILIES = {"retinanet": retinanet_weights, "ssd": ssd_weights, "faster_rcnn": faster_rcnn_weights}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_predicts_tiled(family, tmp_path):
    FAMILIES[family](tmp_path / "w.safetensors")
    predictor = anchordet.load(tmp_path / "w.safetensors", device="cpu")
    torch.manual_seed(1)
    left, right = torch.rand(3, 96, 96), torch.rand(3, 96, 96)
    image = torch.cat([left, right], dim=2)  # two 96 px windows side by side, no overlap
    [a], [b] = predictor.predict(left), predictor.predict(right)
    assert len(a) + len(b) > 0
    expected_boxes = torch.cat([a.boxes, b.boxes + torch.tensor([96., 0, 96, 0])])
    expected = sorted(zip(torch.cat([a.scores, b.scores]).tolist(), expected_boxes.tolist()))
    for batch_size in (1, 2):
        # threshold 1: nothing merges, so the tiled result is exactly the two halves' predictions
        [tiled] = predictor.predict(image, tile=96, tile_overlap=0.0, tile_merge_thresh=1.0,
                                    batch_size=batch_size)
        assert tiled.image_size == (96, 192)
        got = sorted(zip(tiled.scores.tolist(), tiled.boxes.tolist()))
        assert len(got) == len(expected)
        for (s1, b1), (s2, b2) in zip(got, expected):
            assert s1 == pytest.approx(s2, abs=1e-5) and b1 == pytest.approx(b2, abs=1e-3)
    # a tile as large as the image: the untiled prediction
    [whole] = predictor.predict(left, tile=96)
    torch.testing.assert_close(whole.boxes, a.boxes)
    # merging with the default settings leaves no two matching boxes of one class from different tiles
    [merged] = predictor.predict(image, tile=96, tile_overlap=0.5, max_detections=5)
    assert len(merged) <= 5 and torch.all(merged.scores[:-1] >= merged.scores[1:])


def test_a_tiff_predicted_tiled_is_read_window_by_window_with_the_same_result(tmp_path):
    retinanet_weights(tmp_path / "w.safetensors")
    predictor = anchordet.load(tmp_path / "w.safetensors", device="cpu")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", pixels, photometric="rgb", tile=(64, 64))
    [in_memory] = predictor.predict(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255, tile=128)
    [tiled] = predictor.predict(tmp_path / "big.tif", tile=128)
    assert tiled.image_size == (300, 400) and len(tiled) > 0
    torch.testing.assert_close(tiled.boxes, in_memory.boxes)


def big_tiff(path, side=8300, tile=512):
    """A zlib-compressed tiled TIFF above the untiled pixel limit, written tile by tile (small in
    memory and on disk): zeros, with each tile's first row set to its tile index."""
    def tiles():
        count = -(-side // tile)
        for index in range(count * count):
            block = np.zeros((tile, tile, 3), np.uint8)
            block[0, :, 0] = index % 251
            yield block

    tifffile.imwrite(path, tiles(), shape=(side, side, 3), dtype="uint8", tile=(tile, tile), photometric="rgb",
                     compression="zlib")


def test_a_tiff_above_the_pixel_limit_is_refused_untiled_and_read_by_windows(tmp_path):
    from anchordet.data.image_io import MAX_PIXELS
    from anchordet.tiling import TiffSource

    big_tiff(tmp_path / "big.tif")
    assert 8300 * 8300 > MAX_PIXELS
    retinanet_weights(tmp_path / "w.safetensors")
    predictor = anchordet.load(tmp_path / "w.safetensors", device="cpu")
    with pytest.raises(UserError, match="exceeds the limit"):
        predictor.predict(tmp_path / "big.tif")  # untiled reads keep the decompression-bomb guard
    source = TiffSource(tmp_path / "big.tif")
    window = source.read(1020, 7900, 1540, 8300)  # rows 1024 and 1536 start tile rows 2 and 3; x 7680.. is column 15
    assert window.shape == (3, 520, 400)
    assert float(window[0, 4, 0]) == pytest.approx((2 * 17 + 15) / 255)
    assert float(window[0, 516, 399]) == pytest.approx((3 * 17 + 16) / 255)
    assert float(window[0, 5, 0]) == 0 and float(window[1:].abs().sum()) == 0
    source.close()


def test_video_frames_predict_tiled(tmp_path):
    retinanet_weights(tmp_path / "w.safetensors")
    predictor = anchordet.load(tmp_path / "w.safetensors", device="cpu")
    torch.manual_seed(2)
    frames = [torch.rand(3, 70, 120) for _ in range(3)]
    got = list(predictor.predict_video(frames, draw=False, progress=False, tile=64, batch_size=2))
    expected = predictor.predict(frames, tile=64, batch_size=2)
    assert len(got) == 3
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.boxes, e.boxes)
    untiled = list(predictor.predict_video(frames, draw=False, progress=False))
    assert any(len(u) != len(g) or not torch.equal(u.boxes, g.boxes) for u, g in zip(untiled, got))
