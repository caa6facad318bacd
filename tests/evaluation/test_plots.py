"""plot_pr_curves writes one readable PNG per class with gt, plus the overall one."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from anchordet.evaluation import CocoEvaluator, VocEvaluator
from anchordet.evaluation.plots import plot_pr_curves

GT = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "a b/c"}, {"id": 2, "name": "empty"}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100}]}


def test_coco_and_voc_plots(tmp_path):
    for name, ev in (("coco", CocoEvaluator(GT)), ("voc", VocEvaluator(GT))):
        ev.add(1, torch.tensor([[0.0, 0, 10, 10], [30, 30, 40, 40]]), torch.tensor([0.9, 0.8]), torch.tensor([1, 1]))
        paths = plot_pr_curves(ev.summarize(), tmp_path / name)
        # "empty" has no gt: no curve, no file; the class name is made file-safe
        assert [p.name for p in paths] == ["pr_overall.png", "pr_000_a_b_c.png"]
        for p in paths:
            with Image.open(p) as im:
                assert im.format == "PNG" and im.size[0] > 100
                assert np.asarray(im.convert("L")).std() > 0  # not a blank canvas
