"""Proposals from RPN outputs: the batched generator against its plain per-image reference."""
import pytest
import torch

from anchordet.anchors.grid import GridAnchorGenerator
from anchordet.coding.box_coder import BoxCoder
from anchordet.postprocess.proposals import ProposalGenerator, ProposalSettings


@pytest.mark.parametrize("min_size", [0.0, 16.0])
def test_proposals_batched_match_reference(min_size):
    g = torch.Generator().manual_seed(0)
    objectness = torch.randn(2, 8 * 6 * 9, generator=g)
    deltas = torch.randn(2, 8 * 6 * 9, 4, generator=g) * 0.5
    (anchors,) = GridAnchorGenerator(((16, 32, 64),), (0.5, 1.0, 2.0), (16,)).grid_anchors([(8, 6)])
    box_coder = BoxCoder()  # the RPN's (1, 1, 1, 1)
    sizes = [(128, 96), (70, 90)]
    generator = ProposalGenerator(0.6, min_size)
    settings = ProposalSettings(300, 40)
    got = generator(objectness, deltas, anchors, sizes, box_coder, settings)
    expected = generator.reference(objectness, deltas, anchors, sizes, box_coder, settings)
    for boxes, scores, ref_boxes, ref_scores, (h, w) in zip(*got, *expected, sizes):
        torch.testing.assert_close(boxes, ref_boxes)
        torch.testing.assert_close(scores, ref_scores)
        assert 0 < len(boxes) <= 40
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all() and (boxes >= 0).all()
        assert ((boxes[:, 2:] - boxes[:, :2]) >= max(min_size, 1e-6)).all()
