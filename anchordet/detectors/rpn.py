"""Region Proposal Network (Ren et al. 2015, Sec. 3.1; seed 003) as a reusable detector part:
anchors, raw outputs, anchor targets + sampling + losses, and proposals. Any batch size, each
image with its own size (images are padded to a common size; per-image sizes decide which
anchors lie inside an image and where proposals are clipped).

Anchor targets, as seed 003 (``DenseTargetBuilder``'s border rule): only anchors inside the
image (``allowed_border`` pixels of slack, 0 in the paper) take part. They are matched against
the gt boxes on their own, so each gt's best *inside* anchors become positive (IoU >= 0.7
positive, < 0.3 negative, ties of each gt's best IoU positive), and every other anchor is
ignored. Then 256 anchors per image are sampled, up to half positive.

Losses (Ren et al. Eq. 1): binary cross-entropy on the sampled anchors and smooth L1 (beta 1/9,
Detectron's RPN value) on the sampled positives, both summed and divided by the number of
sampled anchors of the batch (under DDP the mean over processes, so that the averaged gradients
are those of one process on the global batch; RetinaNet and SSD do the same with positives). The paper's 1/N_cls (256) and lambda/N_reg (10/2400) are about the
same factor; seed 003 instead averaged its box loss over positive coordinates, times 10, and
detached it (``.data``): here both losses carry gradients.

Proposals: ``postprocess.proposals.ProposalGenerator`` (top-k, decode, clip, min size, NMS 0.7),
with the training (12000 / 2000) or test (6000 / 300) settings the caller passes.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anchordet.anchors.grid import GridAnchorGenerator
from anchordet.coding.box_coder import BoxCoder
from anchordet.distributed import reduce_mean
from anchordet.losses.box import box_regression_loss
from anchordet.losses.dense_targets import DenseTargetBuilder, DenseTargets
from anchordet.matching.iou_matcher import IoUMatcher
from anchordet.postprocess.proposals import (TEST_PROPOSALS, TRAIN_PROPOSALS, FlatProposals, ProposalGenerator, Proposals,
                                             ProposalSettings)
from anchordet.sampling.balanced import RPN_SAMPLER, BalancedSampler
from anchordet.structures.targets import Targets


class RPNOutputs(NamedTuple):
    """objectness (B, A) logits; box_deltas (B, A, 4) (weights 1, 1, 1, 1); anchors (A, 4) xyxy
    in input pixels, shared by the batch, in the head's order."""

    objectness: Tensor
    box_deltas: Tensor
    anchors: Tensor


class RegionProposalNetwork(nn.Module):
    """Args:
        head: features (B, C, H, W) -> (objectness (B, H*W*A), deltas (B, H*W*A, 4)).
        anchor_generator: one level (stride 16, sizes 128/256/512, ratios 0.5/1/2 in the paper).
        box_coder: weights (1, 1, 1, 1).
        matcher: >= 0.7 positive, < 0.3 negative, ties of each gt's best positive.
        allowed_border: anchors reaching further outside the image are ignored (0; None keeps
            every anchor, as torchvision and detectron2 do).
        sampler: 256 per image, up to half positive.
        proposal_generator / train_proposals / test_proposals: see the module docstring.
        box_loss_beta: smooth L1 beta of the box loss (1/9).
    """

    def __init__(self, head: nn.Module, anchor_generator: GridAnchorGenerator,
                 box_coder: BoxCoder = BoxCoder(),
                 matcher: IoUMatcher = IoUMatcher(0.7, 0.3, low_quality="ties"),
                 allowed_border: float | None = 0.0,
                 sampler: BalancedSampler = RPN_SAMPLER,
                 proposal_generator: ProposalGenerator = ProposalGenerator(),
                 train_proposals: ProposalSettings = TRAIN_PROPOSALS,
                 test_proposals: ProposalSettings = TEST_PROPOSALS,
                 box_loss_beta: float = 1.0 / 9):
        super().__init__()
        if anchor_generator.num_levels != 1:
            raise ValueError(f"the RPN takes one feature map; the anchor generator has {anchor_generator.num_levels} levels")
        self.head, self.anchor_generator, self.box_coder = head, anchor_generator, box_coder
        self.target_builder = DenseTargetBuilder(matcher, box_coder, allowed_border)
        self.sampler = sampler
        self.proposal_generator = proposal_generator
        self.train_proposals, self.test_proposals = train_proposals, test_proposals
        self.box_loss_beta = box_loss_beta

    def forward(self, features: Tensor) -> RPNOutputs:
        """features (B, C, H, W) at the anchor generator's stride -> RPNOutputs."""
        objectness, deltas = self.head(features)
        (anchors,) = self.anchor_generator.grid_anchors([tuple(features.shape[-2:])], device=features.device)
        return RPNOutputs(objectness, deltas, anchors)

    def build_targets(self, anchors: Tensor, targets: Sequence[Targets],
                      image_sizes: Sequence[tuple[int, int]]) -> DenseTargets:
        """Per-anchor targets (B, A, ...) by the target builder's border rule: anchors outside an
        image (beyond ``allowed_border``) are IGNORE and never matched."""
        return self.target_builder.build(anchors, [t.to(anchors.device) for t in targets], image_sizes)

    def loss(self, outputs: RPNOutputs, targets: Sequence[Targets], image_sizes: Sequence[tuple[int, int]],
             generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """{"loss_rpn_cls", "loss_rpn_box"}: scalar tensors (see the module docstring)."""
        dense = self.build_targets(outputs.anchors, targets, image_sizes)
        masks = self.sampler.sample(dense.match_labels, generator)
        normalizer = reduce_mean(masks.sampled.sum().float()).clamp(min=1)
        loss_cls = F.binary_cross_entropy_with_logits(
            outputs.objectness[masks.sampled].float(), masks.positive[masks.sampled].float(), reduction="sum")
        loss_box = box_regression_loss(outputs.box_deltas, dense.box_targets, masks.positive,
                                       "smooth_l1", self.box_loss_beta)
        return {"loss_rpn_cls": loss_cls / normalizer, "loss_rpn_box": loss_box / normalizer}

    def proposals(self, outputs: RPNOutputs, image_sizes: Sequence[tuple[int, int]],
                  settings: ProposalSettings) -> Proposals:
        """Detached proposals per image (see the module docstring)."""
        return self.flat_proposals(outputs, image_sizes, settings).per_image(len(image_sizes))

    def flat_proposals(self, outputs: RPNOutputs, image_sizes: Tensor | Sequence[tuple[int, int]],
                       settings: ProposalSettings) -> FlatProposals:
        """``proposals`` as flat tensors (traceable; ``image_sizes`` may be a (B, 2) tensor)."""
        return self.proposal_generator.flat(outputs.objectness, outputs.box_deltas, outputs.anchors,
                                            image_sizes, self.box_coder, settings)
