import pytest
import torch

from anchordet.structures.targets import Detections, Targets, validate_targets


def test_default_ignore_and_trainable():
    t = Targets(torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 5]]), torch.tensor([0, 2]),
                torch.tensor([False, True]))
    assert len(t) == 2
    assert t.trainable.labels.tolist() == [0]
    assert t.ignored_boxes.tolist() == [[1.0, 1, 5, 5]]
    assert Targets().ignore.shape == (0,)


def test_detections_select_and_empty():
    d = Detections(torch.rand(3, 4), torch.tensor([0.9, 0.5, 0.1]), torch.tensor([1, 0, 1]))
    assert d.select(d.scores > 0.3).labels.tolist() == [1, 0]
    assert len(Detections.empty()) == 0


@pytest.mark.parametrize("boxes,labels,message", [
    (torch.tensor([[0.0, 0, 4, 4], [2, 2, 1, 5]]), torch.tensor([0, 1]), "image 0, box 1: [2, 2, 1, 5] is degenerate"),
    (torch.tensor([[0.0, 0, float("nan"), 4]]), torch.tensor([0]), "image 0, box 0: [0, 0, nan, 4] has a non-finite"),
    (torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([3]), "image 0, box 0: label 3 outside 0..2"),
    (torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([-1]), "label -1 outside"),
    (torch.tensor([0.0, 0, 4, 4]), torch.tensor([0]), "boxes must be a (N, 4) tensor, got (4,)"),
    (torch.tensor([[0, 0, 4, 4]]), torch.tensor([0]), "boxes must be floating point"),
    (torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([0.0]), "labels must be integers"),
    (torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([0, 1]), "labels must be a (1,) tensor"),
])
def test_validate_targets_names_image_box_and_value(boxes, labels, message):
    good = Targets(torch.tensor([[1.0, 1, 2, 2]]), torch.tensor([0]))
    with pytest.raises(ValueError) as err:
        validate_targets([Targets(boxes, labels)], num_classes=3)
    assert message in str(err.value)
    validate_targets([good], num_classes=3)


def test_validate_targets_counts_and_type():
    with pytest.raises(ValueError, match="got 1 Targets for 2 images"):
        validate_targets([Targets()], num_classes=3, num_images=2)
    with pytest.raises(ValueError, match="image 0: expected anchordet.Targets, got dict"):
        validate_targets([{"boxes": torch.zeros(0, 4)}], num_classes=3)
