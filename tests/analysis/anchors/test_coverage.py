import torch

from anchordet.analysis.anchors.coverage import AnnotatedImage, analyze_coverage, match_statistics
from anchordet.anchors.grid import GridAnchorGenerator
from anchordet.matching.iou_matcher import IoUMatcher

GEN = GridAnchorGenerator(((32.0,), (64.0,)), (1.0,), (16, 32), offset=0.5)
MATCHER = IoUMatcher(0.5, 0.4, low_quality="ties")


def anchors_for_size(size):
    return torch.cat(GEN.grid_anchors(GEN.feature_sizes_for(size)))


def test_box_equal_to_an_anchor_is_covered():
    anchors = anchors_for_size((128, 128))
    gt = anchors[5:6].clone()
    stats = match_statistics(anchors, gt, MATCHER)
    assert stats.best_iou.tolist() == [1.0]
    assert stats.num_confident.item() >= 1 and stats.num_positive.item() >= 1


def test_tiny_box_gets_only_low_quality_or_nothing():
    anchors = anchors_for_size((128, 128))
    # a 4x4 box inside the 32x32 anchor centred at (8, 8): IoU 16 / 1024, below 0.4
    gt = torch.tensor([[6.0, 6.0, 10.0, 10.0]])
    stats = match_statistics(anchors, gt, MATCHER)
    assert stats.best_iou.item() == 16 / 1024
    assert stats.num_confident.item() == 0 and stats.num_positive.item() == 1
    no_low_quality = match_statistics(anchors, gt, IoUMatcher(0.5, 0.4))
    assert no_low_quality.num_positive.item() == 0


def test_report_shares_sizes_and_uncovered_list():
    images = [
        AnnotatedImage(7, (128, 128), torch.tensor([[8.0, 8, 40, 40], [6, 6, 10, 10]]), torch.tensor([0, 1])),
        AnnotatedImage(9, (128, 128), torch.tensor([[16.0, 16, 80, 80]]), torch.tensor([1])),
    ]
    report = analyze_coverage(images, anchors_for_size, IoUMatcher(0.5, 0.4))
    assert report.covered.tolist() == [True, False, True]
    assert abs(report.summary()["covered"] - 2 / 3) < 1e-6
    # 32 x 32 has area 32^2: medium, as pycocotools counts it
    assert report.by_size()["small"]["boxes"] == 1 and report.by_size()["medium"]["boxes"] == 2
    assert report.by_class(2)[1]["covered"] == 0.5
    uncovered = report.uncovered()
    assert [u["image_id"] for u in uncovered] == [7] and uncovered[0]["box"] == [6.0, 6.0, 10.0, 10.0]


def test_empty_dataset_and_image_without_boxes():
    report = analyze_coverage([AnnotatedImage(1, (64, 64), torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))],
                              anchors_for_size, MATCHER)
    assert report.summary() == {"boxes": 0}
    assert analyze_coverage([], anchors_for_size, MATCHER).summary() == {"boxes": 0}
