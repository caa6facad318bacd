import torch

from anchordet.structures.targets import Detections
from anchordet.visualize import PALETTE, draw_detections, save_grid


def test_draws_box_outline_in_class_colour(tmp_path):
    image = torch.zeros(3, 40, 40)
    det = Detections(torch.tensor([[10.0, 20.0, 30.0, 35.0]]), torch.tensor([0.9]), torch.tensor([1]))
    picture = draw_detections(image, det, ["a", "b"])
    assert picture.getpixel((20, 35)) == PALETTE[1]  # bottom edge
    assert picture.getpixel((20, 28)) == (0, 0, 0)  # inside stays untouched
    low = draw_detections(image, det, score_thresh=0.95)
    assert low.getpixel((20, 35)) == (0, 0, 0)
    path = save_grid([picture, low], tmp_path / "grid.png", columns=2)
    assert path.exists()
