import warnings

import pytest
import torch

from anchordet.coding.box_coder import BoxCoder
from anchordet.detectors.retinanet import RetinaNet
from anchordet.detectors.ssd import SSD
from anchordet.postprocess.dense import DensePostprocess
from anchordet.structures.outputs import DenseOutputs
from anchordet.postprocess.rescale import rescale_detections
from anchordet.structures.targets import Detections

ANCHORS = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [40, 40, 90, 90]])


def logit(p):
    return torch.log(torch.tensor(p) / (1 - torch.tensor(p)))


def test_sigmoid_threshold_nms_and_clip():
    cls = torch.full((1, 4, 2), -10.0)
    cls[0, 0, 1], cls[0, 1, 1], cls[0, 2, 0], cls[0, 3, 0] = logit(0.9), logit(0.8), logit(0.6), logit(0.04)
    deltas = torch.zeros(1, 4, 4)
    out = DensePostprocess(0.05, 1000, 0.5, 100).sigmoid(cls, deltas, ANCHORS, [4], [(25, 25)], BoxCoder()).per_image(1)
    (det,) = out
    assert det.labels.tolist() == [1, 0]  # anchor 1 suppressed by anchor 0, anchor 3 below 0.05
    torch.testing.assert_close(det.scores, torch.tensor([0.9, 0.6]))
    torch.testing.assert_close(det.boxes, torch.tensor([[0.0, 0, 10, 10], [20, 20, 25, 25]]))


def test_sigmoid_topk_is_per_level():
    cls = torch.full((1, 4, 1), -10.0)
    cls[0, :, 0] = torch.stack([logit(0.9), logit(0.8), logit(0.7), logit(0.6)])
    boxes = torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 10, 30], [20, 20, 30, 30]])
    det, = DensePostprocess(0.05, 1, 0.5, 100).sigmoid(cls, torch.zeros(1, 4, 4), boxes, [2, 2], [(40, 40)], BoxCoder()).per_image(1)
    torch.testing.assert_close(det.scores, torch.tensor([0.9, 0.7]))  # best of each level


def test_max_detections_and_empty():
    cls = torch.zeros(2, 4, 3)
    cls[1] = -20.0
    out = DensePostprocess(0.05, 1000, 0.5, 2).sigmoid(cls, torch.zeros(2, 4, 4), ANCHORS, [4], [(100, 100)] * 2, BoxCoder()).per_image(2)
    assert len(out[0]) == 2 and len(out[1]) == 0
    assert out[1].boxes.shape == (0, 4)


def test_softmax_background_last_and_per_class_nms():
    # two classes + background. Anchor 0: class 0; anchor 1: class 0 (overlaps 0); anchor 2: background.
    logits = torch.tensor([[[5.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 9.0], [0.0, 3.0, 0.0]]])
    out, = DensePostprocess(0.01, 200, 0.45, 200).softmax(logits, torch.zeros(1, 4, 4), ANCHORS, [(100, 100)], BoxCoder((10.0, 10.0, 5.0, 5.0))).per_image(1)
    probs = torch.softmax(logits[0], -1)
    kept = {(int(l), round(float(s), 5)) for l, s in zip(out.labels, out.scores)}
    assert (0, round(float(probs[0, 0]), 5)) in kept and (1, round(float(probs[3, 1]), 5)) in kept
    assert (0, round(float(probs[1, 0]), 5)) not in kept  # suppressed by anchor 0 within class 0
    assert all(s > 0.01 for s in out.scores.tolist())
    assert out.scores.tolist() == sorted(out.scores.tolist(), reverse=True)


def test_rescale():
    det = Detections(torch.tensor([[10.0, 20.0, 64.0, 32.0]]), torch.tensor([0.5]), torch.tensor([1]))
    out = rescale_detections(det, from_size=(32, 64), to_size=(64, 96))
    torch.testing.assert_close(out.boxes, torch.tensor([[15.0, 40.0, 96.0, 64.0]]))


def _assert_same(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert len(g) == len(e)
        torch.testing.assert_close(g.scores, e.scores, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(g.boxes, e.boxes, atol=1e-4, rtol=1e-5)
        assert torch.equal(g.labels, e.labels)


def _dense_case(seed: int, num_classes: int, sizes_per_level, image_sizes):
    """Random anchors over a 64x96 padded batch, logits around the threshold so that many
    candidates pass it and the top-k cuts them."""
    gen = torch.Generator().manual_seed(seed)
    num_anchors = sum(sizes_per_level)
    centers = torch.rand(num_anchors, 2, generator=gen) * torch.tensor([96.0, 64.0])
    wh = torch.rand(num_anchors, 2, generator=gen) * 40 + 4
    anchors = torch.cat([centers - wh / 2, centers + wh / 2], 1)
    logits = torch.randn(len(image_sizes), num_anchors, num_classes, generator=gen) - 2.0
    deltas = torch.randn(len(image_sizes), num_anchors, 4, generator=gen) * 0.3
    return logits, deltas, anchors


def test_batched_sigmoid_matches_per_image_reference():
    image_sizes = [(64, 96), (50, 70), (64, 33)]
    levels = [300, 120, 40]
    logits, deltas, anchors = _dense_case(0, 5, levels, image_sizes)
    post = DensePostprocess(0.05, 200, 0.5, 100)  # top-k 200 < candidates of level 0 (~1500 pass)
    assert int((torch.sigmoid(logits[0, :300]) > 0.05).sum()) > 200
    _assert_same(post.sigmoid(logits, deltas, anchors, levels, image_sizes, BoxCoder()).per_image(3),
                 post.sigmoid_reference(logits, deltas, anchors, levels, image_sizes, BoxCoder()))
    few = DensePostprocess(0.6, 1000, 0.5, 100)  # fewer candidates than the top-k on every level
    _assert_same(few.sigmoid(logits, deltas, anchors, levels, image_sizes, BoxCoder()).per_image(3),
                 few.sigmoid_reference(logits, deltas, anchors, levels, image_sizes, BoxCoder()))


def test_batched_softmax_matches_per_image_reference():
    image_sizes = [(64, 96), (40, 96)]
    logits, deltas, anchors = _dense_case(1, 4, [500], image_sizes)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    for post in (DensePostprocess(0.01, 50, 0.45, 200), DensePostprocess(0.3, 400, 0.45, 20)):
        _assert_same(post.softmax(logits, deltas, anchors, image_sizes, coder).per_image(2),
                     post.softmax_reference(logits, deltas, anchors, image_sizes, coder))


def test_score_kind_is_the_detectors_field_and_picks_the_rule():
    assert RetinaNet.score_kind == "sigmoid" and SSD.score_kind == "softmax"
    image_sizes = [(64, 96), (50, 70)]
    logits, deltas, anchors = _dense_case(2, 4, [300, 100], image_sizes)
    outputs = DenseOutputs(logits, deltas, anchors, [300, 100])
    post = DensePostprocess(0.05, 100, 0.5, 50)
    _assert_same(post(outputs, image_sizes, BoxCoder(), "sigmoid").per_image(2),
                 post.sigmoid_reference(logits, deltas, anchors, [300, 100], image_sizes, BoxCoder()))
    _assert_same(post(outputs, torch.tensor(image_sizes), BoxCoder(), "softmax").per_image(2),
                 post.softmax_reference(logits, deltas, anchors, image_sizes, BoxCoder()))
    with pytest.raises(ValueError, match="score_kind must be one of"):
        post(outputs, image_sizes, BoxCoder(), "sigmoid_or_softmax")


class _Traced(torch.nn.Module):
    """The post-processing of outputs whose level sizes come from tensor shapes (as in a
    detector's forward), so that tracing records them."""

    def __init__(self, post: DensePostprocess, score_kind: str):
        super().__init__()
        self.post, self.score_kind = post, score_kind

    def forward(self, level0, level1, deltas, anchors, image_sizes):
        outputs = DenseOutputs(torch.cat([level0, level1], 1), deltas, anchors, [level0.shape[1], level1.shape[1]])
        return tuple(self.post(outputs, image_sizes, BoxCoder(), self.score_kind))


@pytest.mark.parametrize("score_kind", ["sigmoid", "softmax"])
def test_traced_equals_reference_at_other_shapes(score_kind):
    """The one implementation, traced once, runs at other batch sizes, anchor counts and image
    sizes (nothing of the example frozen into the trace) and equals the per-image reference."""
    post = DensePostprocess(0.05, 150, 0.5, 40)  # top-k 150 < candidates of the larger levels

    def case(seed, levels, image_sizes):
        logits, deltas, anchors = _dense_case(seed, 4, levels, image_sizes)
        inputs = (logits[:, :levels[0]], logits[:, levels[0]:], deltas, anchors, torch.tensor(image_sizes))
        return inputs, (logits, deltas, anchors, levels, image_sizes)

    example, _ = case(0, [200, 60], [(64, 96)])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about constants (thresholds)
        traced = torch.jit.trace(_Traced(post, score_kind), example, check_trace=False)
    inputs, (logits, deltas, anchors, levels, image_sizes) = case(1, [400, 100], [(64, 96), (40, 70), (64, 50)])
    flat = traced(*inputs)
    got = type(post(DenseOutputs(logits, deltas, anchors, levels), image_sizes, BoxCoder(), score_kind))(*flat)
    if score_kind == "sigmoid":
        expected = post.sigmoid_reference(logits, deltas, anchors, levels, image_sizes, BoxCoder())
    else:
        expected = post.softmax_reference(logits, deltas, anchors, image_sizes, BoxCoder())
    assert all(len(d) > 10 for d in expected)
    _assert_same(got.per_image(3), expected)
