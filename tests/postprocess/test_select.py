import torch

from anchordet.postprocess.select import image_sizes_tensor, nms_best_per_image, rank_within_image


def test_rank_within_image_hand_worked():
    assert rank_within_image(torch.tensor([1, 0, 1, 1, 0, 2]), 3).tolist() == [0, 0, 1, 2, 1, 0]
    assert rank_within_image(torch.zeros(0, dtype=torch.int64), 2).tolist() == []


def test_nms_best_per_image_keeps_groups_apart_and_caps_each_image():
    # image 0: two overlapping boxes of one class (IoU 0.81: one kept) and one of another class;
    # image 1: the same boxes, three classes, nothing suppressed, capped at 2.
    box = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 10]])
    boxes = torch.cat([box, box])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.95, 0.5])
    labels = torch.tensor([0, 0, 1, 0, 1, 2])
    batch_index = torch.tensor([0, 0, 0, 1, 1, 1])
    kept = nms_best_per_image(boxes, scores, batch_index * 3 + labels, batch_index, 2, 0.5, 2)
    assert kept.tolist() == [4, 0, 2, 3]  # by score: image 1's 0.95, image 0's 0.9 and 0.7, image 1's 0.6


def test_image_sizes_tensor():
    assert image_sizes_tensor([(3, 4), (5, 6)], "cpu").tolist() == [[3, 4], [5, 6]]
    assert image_sizes_tensor([], "cpu").shape == (0, 2)
    sizes = torch.tensor([[1, 2]])
    assert image_sizes_tensor(sizes, "cpu") is sizes
