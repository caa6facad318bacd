import torch

from anchordet.data.shapes import CLASS_COLOURS, all_found, make_scenes
from anchordet.structures.boxes import box_iou
from anchordet.structures.targets import Detections


def test_scenes_are_seeded_and_boxes_painted():
    images, targets = make_scenes(3, 64, min_side=10, max_side=20, seed=5)
    again, _ = make_scenes(3, 64, min_side=10, max_side=20, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(images, again))
    for image, t in zip(images, targets):
        assert 1 <= len(t) <= 3
        assert box_iou(t.boxes, t.boxes).fill_diagonal_(0).max() == 0
        for box, label in zip(t.boxes.long(), t.labels):
            x1, y1, x2, y2 = box.tolist()
            patch = image[:, y1:y2, x1:x2]
            assert torch.equal(patch, CLASS_COLOURS[label][:, None, None].expand_as(patch))


def test_all_found():
    _, targets = make_scenes(1, 64, max_boxes=1, min_side=10, max_side=20)
    gt = targets[0]
    hit = Detections(gt.boxes.clone(), torch.tensor([0.9]), gt.labels.clone())
    wrong_class = Detections(gt.boxes.clone(), torch.tensor([0.9]), (gt.labels + 1) % 3)
    assert all_found([hit], targets) and not all_found([wrong_class], targets)
    assert not all_found([Detections.empty()], targets)
