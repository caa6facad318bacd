import math

import torch
from PIL import Image

from anchordet.analysis.anchors.coverage import CoverageReport
from anchordet.anchors.grid import GridAnchorGenerator
from anchordet.analysis.anchors.plots import anchor_shapes, plot_best_iou, plot_box_shapes
from anchordet.anchors.ssd import SSDDefaultBoxes
from anchordet.matching.iou_matcher import IoUMatcher


def test_anchor_shapes_of_grid_and_ssd():
    grid = GridAnchorGenerator(((32.0,),), (0.5, 2.0), (8,))
    # ratio = height / width, area 32^2: width 32 / sqrt(r), height 32 * sqrt(r)
    expected = torch.tensor([[32 / math.sqrt(0.5), 32 * math.sqrt(0.5)], [32 / math.sqrt(2), 32 * math.sqrt(2)]])
    assert torch.allclose(anchor_shapes(grid)[0], expected)
    ssd = SSDDefaultBoxes((8,), (18,), (32,), ((2.0,),))
    assert torch.allclose(anchor_shapes(ssd)[0], torch.tensor([[18.0, 18], [24, 24], [18 * 2 ** 0.5, 18 / 2 ** 0.5],
                                                               [18 / 2 ** 0.5, 18 * 2 ** 0.5]]))


def test_plots_are_written(tmp_path):
    report = CoverageReport(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]),
                            torch.tensor([[0.0, 0, 10, 10], [5, 5, 50, 30], [0, 0, 100, 200]]),
                            torch.tensor([0.2, 0.6, 0.8]), torch.tensor([1, 3, 2]), torch.tensor([0, 3, 2]))
    grid = GridAnchorGenerator(((32.0,), (64.0,)), (1.0,), (8, 16))
    first = plot_best_iou({"current": report}, tmp_path / "plots", IoUMatcher(0.5, 0.4))
    second = plot_box_shapes(report, {"current": grid}, tmp_path / "plots")
    for path, name in ((first, "best_iou.png"), (second, "box_shapes.png")):
        assert path.name == name
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] >= 400
