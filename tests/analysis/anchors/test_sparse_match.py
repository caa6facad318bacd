"""The sparse candidate search gives exactly the statistics of the plain all-anchors matcher."""
import math

import pytest
import torch

from anchordet.analysis.anchors.coverage import (AnnotatedImage, analyze_coverage, candidate_anchors, match_statistics,
                                        sparse_match_statistics)
from anchordet.anchors.grid import GridAnchorGenerator, retinanet_anchor_sizes
from anchordet.anchors.ssd import SSDDefaultBoxes
from anchordet.matching.iou_matcher import IoUMatcher
from helpers import layout_anchors


RETINA = GridAnchorGenerator(retinanet_anchor_sizes((16, 32, 64, 128, 256)), (0.5, 1.0, 2.0), (8, 16, 32, 64, 128))
SSD = SSDDefaultBoxes((8, 16, 32, 64), (18, 30, 46, 66), (30, 46, 66, 96), ((1.5, 2.5),) * 4)
RPN = GridAnchorGenerator(((32.0, 64.0, 128.0),), (0.5, 1.0, 2.0), (16,))
LAYOUTS = {
    "retinanet": layout_anchors("retinanet", RETINA, IoUMatcher(0.5, 0.4, "ties"), RETINA.strides, 32),
    "retinanet_no_low_quality": layout_anchors("retinanet", RETINA, IoUMatcher(0.5, 0.4), RETINA.strides, 32),
    "ssd": layout_anchors("ssd", SSD, IoUMatcher(0.5, 0.5, "force"), SSD.steps, 1, 128),
    "rpn": layout_anchors("rpn", RPN, IoUMatcher(0.7, 0.3, "ties"), RPN.strides, 16, None, 0.0),
}


def _random_boxes(generator, count, size, anchors):
    xy = torch.rand(count, 2, generator=generator) * torch.tensor([size[1], size[0]])
    wh = torch.exp(torch.rand(count, 2, generator=generator) * 5)
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, size[1])
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, size[0])
    if count >= 3 and len(anchors):
        boxes[0] = anchors[int(torch.randint(len(anchors), (1,), generator=generator))]  # exactly an anchor
        boxes[1] = boxes[2]  # a duplicate gt: the two compete for the same anchors
    return boxes


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_sparse_equals_dense_on_random_images(name):
    layout = LAYOUTS[name]
    size = (128, 128) if name == "ssd" else (200, 150)
    anchors = layout.at(size)
    generator = torch.Generator().manual_seed(0)
    images = [_random_boxes(generator, int(torch.randint(0, 9, (1,), generator=generator)), size, anchors.boxes)
              for _ in range(60)]
    sparse = sparse_match_statistics(anchors, images)
    for boxes, fast in zip(images, sparse):
        plain = match_statistics(anchors.boxes, boxes, anchors.matcher)
        assert torch.equal(fast.best_iou, plain.best_iou)
        assert torch.equal(fast.num_positive, plain.num_positive)
        assert torch.equal(fast.num_confident, plain.num_confident)


def test_candidates_are_few_and_keep_image_order():
    anchors = LAYOUTS["retinanet"].at((512, 512))
    boxes = torch.tensor([[100.0, 100, 140, 150], [300, 300, 420, 380]])
    image, index = candidate_anchors(anchors, boxes, torch.tensor([1, 0]))
    assert image.tolist() == sorted(image.tolist()) and set(image.tolist()) == {0, 1}
    assert len(index) < len(anchors.boxes) / 100  # a few hundred of 45k anchors


def test_equal_box_covered_and_tiny_box_uncovered_through_the_model_path():
    # The first P3 anchor of size 16, ratio 1: centre (4, 4), corners (-4, -4, 12, 12).
    layout = LAYOUTS["retinanet_no_low_quality"]
    anchors = layout.at((64, 64))
    square = anchors.boxes[3]  # ratio-major: ratio 1.0 (index 1) x size 16 (index 0) = 1 * 3 + 0
    assert square.tolist() == [-4.0, -4.0, 12.0, 12.0]
    tiny = torch.tensor([30.0, 30.0, 32.0, 32.0])  # 2 x 2 px: IoU <= 4 / 256 with the smallest anchor
    images = [AnnotatedImage(5, (64, 64), torch.stack([square, tiny]), torch.tensor([0, 1]))]
    report = analyze_coverage(images, layout.at)
    assert report.best_iou[0] == 1.0 and report.covered.tolist() == [True, False]
    assert report.best_iou[1] <= 4 / 256
    assert [(u["image_id"], u["label"]) for u in report.uncovered()] == [(5, 1)]
    with_low_quality = analyze_coverage(images, LAYOUTS["retinanet"].at)
    assert with_low_quality.low_quality_only.tolist() == [False, True]


def test_analyze_coverage_model_path_equals_tensor_path():
    layout = LAYOUTS["retinanet"]
    generator = torch.Generator().manual_seed(1)
    images = []
    for i, size in enumerate([(96, 128), (96, 128), (64, 200), (96, 128)]):
        boxes = _random_boxes(generator, 4, size, torch.zeros(0, 4))
        images.append(AnnotatedImage(i, size, boxes, torch.arange(4) % 2))
    fast = analyze_coverage(images, layout.at, chunk_size=2)
    plain = analyze_coverage(images, lambda s: layout.at(s).boxes, layout.at((64, 64)).matcher)
    for field in ("image_ids", "labels", "boxes", "best_iou", "num_positive", "num_confident"):
        assert torch.equal(getattr(fast, field), getattr(plain, field)), field
