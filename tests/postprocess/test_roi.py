import math

import torch

from anchordet.postprocess.roi import ROI_BOX_CODER, RoIPostprocess


def test_candidates_hand_worked():
    proposal = torch.tensor([[10.0, 10, 30, 50]])  # w 20, h 40, centre (20, 30)
    logits = torch.log(torch.tensor([[6.0, 3.0, 1.0]]))  # softmax 0.6, 0.3 and background 0.1
    deltas = torch.zeros(1, 3 * 4)
    deltas[0, 4:8] = torch.tensor([10 * 0.5, 0.0, 5 * math.log(2), 0.0])  # class 1: weights 10, 10, 5, 5
    deltas[0, 8:12] = 100.0  # the background's slot is never decoded
    boxes, scores, labels = RoIPostprocess(score_thresh=0.05).candidates(logits, deltas, proposal, (100, 100), ROI_BOX_CODER)
    assert labels.tolist() == [0, 1]
    torch.testing.assert_close(scores, torch.tensor([0.6, 0.3]))
    # class 1: centre x 20 + 0.5 * 20 = 30, width 20 * 2 = 40
    torch.testing.assert_close(boxes, torch.tensor([[10.0, 10, 30, 50], [10.0, 10, 50, 50]]))


def test_clip_threshold_and_background():
    proposal = torch.tensor([[0.0, 0, 40, 40], [5.0, 5, 15, 15]])
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])  # K = 1: the second proposal is background
    deltas = torch.tensor([[0.0, 0, 5 * math.log(4), 5 * math.log(4), 0, 0, 0, 0], [0.0] * 8])
    (det,) = RoIPostprocess(score_thresh=0.05)(logits, deltas, [proposal], [(30, 50)])
    # the first grows to 160x160 around (20, 20) and is clipped to the 50 wide, 30 high image
    torch.testing.assert_close(det.boxes, torch.tensor([[0.0, 0, 50, 30]]))
    torch.testing.assert_close(det.scores, torch.softmax(torch.tensor([5.0, 0.0]), 0)[:1])
    assert det.labels.tolist() == [0]


def test_per_class_nms_and_max_detections():
    proposals = torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 11, 10], [0.0, 0, 10, 10]])
    logits = torch.log(torch.tensor([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]))
    deltas = torch.zeros(3, 12)
    (det,) = RoIPostprocess(score_thresh=0.15, nms_thresh=0.5)(logits, deltas, [proposals], [(20, 20)])
    # class 0: 0.8 (proposal 0) suppresses 0.7 (proposal 1, IoU 9/11); class 1: 0.6 (proposal 2)
    # suppresses 0.2 (proposal 1, IoU 9/11); the 0.1 scores are under the threshold
    assert det.labels.tolist() == [0, 1] and torch.allclose(det.scores, torch.tensor([0.8, 0.6]))
    (top1,) = RoIPostprocess(score_thresh=0.0, max_detections=1)(logits, deltas, [proposals], [(20, 20)])
    assert len(top1) == 1 and top1.scores.item() == det.scores[0].item()


def test_batched_matches_per_image_reference():
    g = torch.Generator().manual_seed(0)
    proposals = []
    for count, size in [(60, 80), (0, 50), (40, 50)]:
        xy = torch.rand(count, 2, generator=g) * size * 0.7
        proposals.append(torch.cat([xy, xy + 4 + torch.rand(count, 2, generator=g) * size * 0.3], dim=1))
    total = sum(len(p) for p in proposals)
    logits = torch.randn(total, 5, generator=g) * 2
    deltas = torch.randn(total, 5 * 4, generator=g)
    sizes = [(80, 80), (50, 60), (50, 40)]
    post = RoIPostprocess(score_thresh=0.1, nms_thresh=0.4, max_detections=25)
    got, expected = post(logits, deltas, proposals, sizes), post.reference(logits, deltas, proposals, sizes)
    assert [len(d) for d in got] == [len(d) for d in expected] and len(got[1]) == 0 and len(got[0]) == 25
    for a, b in zip(got, expected):
        torch.testing.assert_close(a.boxes, b.boxes)
        torch.testing.assert_close(a.scores, b.scores)
        assert torch.equal(a.labels, b.labels)
        assert bool((a.scores[:-1] >= a.scores[1:]).all())
