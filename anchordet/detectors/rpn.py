"""Region Proposal Network (Ren et al. 2015, Sec. 3.1; seed 003) as a reusable detector part:
anchors, raw outputs, anchor targets + sampling + losses, and proposals. Any batch size, each
image with its own size (images are padded to a common size; per-image sizes decide which
anchors lie inside an image and where proposals are clipped).

Anchor targets, as seed 003: only anchors inside the image (``allowed_border`` pixels of slack,
0 in the paper) take part. They are matched against the gt boxes on their own, so each gt's
best *inside* anchors become positive (IoU >= 0.7 positive, < 0.3 negative, ties of each gt's
best IoU positive), and every other anchor is ignored. Then 256 anchors per image are sampled,
up to half positive.

Losses (Ren et al. Eq. 1): binary cross-entropy on the sampled anchors and smooth L1 (beta 1/9,
Detectron's RPN value) on the sampled positives, both summed and divided by the number of
sampled anchors of the batch. The paper's 1/N_cls (256) and lambda/N_reg (10/2400) are about the
same factor; seed 003 instead averaged its box loss over positive coordinates, times 10, and
detached it (``.data``): here both losses carry gradients.

Proposals: per image the ``pre_nms_top_n`` highest-scoring anchors are decoded, clipped to the
image, boxes under ``min_size`` removed, NMS at 0.7, and the ``post_nms_top_n`` best kept.
12000 / 2000 for training and 6000 / 300 for inference (Ren et al. Sec. 3.3 and 4; seed 003);
the caller chooses by passing the settings (``loss`` vs ``predict``), never ``self.training``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection._utils import _topk_min

from anchordet.anchors.grid import GridAnchorGenerator, anchors_inside
from anchordet.coding.box_coder import BoxCoder
from anchordet.losses.box import box_regression_loss
from anchordet.losses.dense_targets import DenseTargetBuilder, DenseTargets
from anchordet.matching.iou_matcher import IGNORE, IoUMatcher
from anchordet.ops.nms import nms_reference
from anchordet.postprocess.select import image_sizes_tensor, nms_best_per_image
from anchordet.sampling.balanced import RPN_SAMPLER, BalancedSampler
from anchordet.structures.boxes import clip_boxes, clip_boxes_to_sizes
from anchordet.structures.targets import Targets


class RPNOutputs(NamedTuple):
    """objectness (B, A) logits; box_deltas (B, A, 4) (weights 1, 1, 1, 1); anchors (A, 4) xyxy
    in input pixels, shared by the batch, in the head's order."""

    objectness: Tensor
    box_deltas: Tensor
    anchors: Tensor


class Proposals(NamedTuple):
    """Per image: boxes (R_i, 4) xyxy in image pixels and objectness logits (R_i,), by
    decreasing score. Detached: proposals are inputs of the RoI stage, not trained through."""

    boxes: list[Tensor]
    scores: list[Tensor]


class FlatProposals(NamedTuple):
    """The proposals of a batch as flat tensors (what the traced / exported graph carries):
    boxes (R, 4), objectness logits (R,) and batch_index (R,) int64, by decreasing score."""

    boxes: Tensor
    scores: Tensor
    batch_index: Tensor

    def per_image(self, batch_size: int) -> Proposals:
        mine = [self.batch_index == i for i in range(batch_size)]
        return Proposals([self.boxes[m] for m in mine], [self.scores[m] for m in mine])


@dataclass(frozen=True)
class ProposalSettings:
    pre_nms_top_n: int
    post_nms_top_n: int


# Ren et al. 2015, Sec. 3.3 / 4 and seed 003; torchvision's defaults for a single-level RPN.
TRAIN_PROPOSALS = ProposalSettings(12000, 2000)
TEST_PROPOSALS = ProposalSettings(6000, 300)


@dataclass(frozen=True)
class ProposalGenerator:
    """Attributes:
    nms_thresh: IoU of the NMS between proposals (0.7).
    min_size: proposals narrower or lower than this many pixels after clipping are removed
        (16 in seed 003 and py-faster-rcnn; boxes with no area are always removed).
    """

    nms_thresh: float = 0.7
    min_size: float = 16.0

    def _top_boxes(self, objectness: Tensor, box_deltas: Tensor, anchors: Tensor, image_sizes: Tensor,
                   box_coder: BoxCoder, pre_nms_top_n: int):
        """Top-k scores (B, k), decoded and clipped boxes (B, k, 4), valid mask (B, k)."""
        scores, index = objectness.detach().topk(_topk_min(objectness, pre_nms_top_n, 1), dim=1)  # (B, k), sorted
        deltas = box_deltas.detach().gather(1, index[..., None].expand(-1, -1, 4))  # (B, k, 4)
        boxes = clip_boxes_to_sizes(box_coder.decode(deltas, anchors[index]), image_sizes[:, None])  # (B, k, 4)
        widths, heights = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        valid = (widths >= self.min_size) & (heights >= self.min_size) & (widths > 0) & (heights > 0)
        return scores, boxes, valid

    def __call__(self, objectness: Tensor, box_deltas: Tensor, anchors: Tensor,
                 image_sizes: Sequence[tuple[int, int]], box_coder: BoxCoder,
                 settings: ProposalSettings) -> Proposals:
        """Args: objectness (B, A), box_deltas (B, A, 4), anchors (A, 4), B image sizes (h, w)."""
        return self.flat(objectness, box_deltas, anchors, image_sizes, box_coder, settings).per_image(len(image_sizes))

    def flat(self, objectness: Tensor, box_deltas: Tensor, anchors: Tensor,
             image_sizes: Tensor | Sequence[tuple[int, int]], box_coder: BoxCoder,
             settings: ProposalSettings) -> FlatProposals:
        """``__call__`` for the whole batch in tensor ops (traceable; ``image_sizes`` may be a
        (B, 2) tensor): all images in one NMS call, grouped by image."""
        sizes = image_sizes_tensor(image_sizes, objectness.device)
        scores, boxes, valid = self._top_boxes(objectness, box_deltas, anchors, sizes, box_coder,
                                               settings.pre_nms_top_n)
        num_images = objectness.shape[0]
        batch_index = torch.arange(num_images, device=scores.device)[:, None].expand_as(scores).flatten()
        valid = valid.flatten()
        boxes, scores, batch_index = boxes.reshape(-1, 4)[valid], scores.flatten()[valid], batch_index[valid]
        kept = nms_best_per_image(boxes, scores, batch_index, batch_index, num_images, self.nms_thresh,
                                  settings.post_nms_top_n)
        return FlatProposals(boxes[kept], scores[kept], batch_index[kept])

    def reference(self, objectness: Tensor, box_deltas: Tensor, anchors: Tensor,
                  image_sizes: Sequence[tuple[int, int]], box_coder: BoxCoder,
                  settings: ProposalSettings) -> Proposals:
        """Plain per-image version (sort, decode, clip, filter, slow NMS): the reference."""
        kept_boxes, kept_scores = [], []
        for logits, deltas, size in zip(objectness.detach(), box_deltas.detach(), image_sizes):
            order = logits.argsort(descending=True, stable=True)[: settings.pre_nms_top_n]
            boxes = clip_boxes(box_coder.decode(deltas[order], anchors[order]), size)
            scores = logits[order]
            widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            valid = (widths >= self.min_size) & (heights >= self.min_size) & (widths > 0) & (heights > 0)
            boxes, scores = boxes[valid], scores[valid]
            keep = nms_reference(boxes, scores, self.nms_thresh)[: settings.post_nms_top_n]
            kept_boxes.append(boxes[keep])
            kept_scores.append(scores[keep])
        return Proposals(kept_boxes, kept_scores)


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
        self.target_builder = DenseTargetBuilder(matcher, box_coder)
        self.allowed_border, self.sampler = allowed_border, sampler
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
        """Per-anchor targets (B, A, ...): anchors outside an image (beyond ``allowed_border``)
        are IGNORE and never matched, so low-quality matches come from inside anchors only."""
        per_image = []
        for t, size in zip(targets, image_sizes):
            inside = (torch.ones(len(anchors), dtype=torch.bool, device=anchors.device) if self.allowed_border is None
                      else anchors_inside(anchors, size, self.allowed_border))
            part = self.target_builder.build_per_image(anchors[inside], t.to(anchors.device))
            full = DenseTargets(
                torch.full((len(anchors),), IGNORE, dtype=part.match_labels.dtype, device=anchors.device),
                part.gt_labels.new_zeros(len(anchors)), part.box_targets.new_zeros((len(anchors), 4)),
                part.matched_boxes.new_zeros((len(anchors), 4)), part.max_iou.new_zeros(len(anchors)))
            for whole, piece in zip(full, part):
                whole[inside] = piece
            per_image.append(full)
        return DenseTargets(*(torch.stack(parts) for parts in zip(*per_image)))

    def loss(self, outputs: RPNOutputs, targets: Sequence[Targets], image_sizes: Sequence[tuple[int, int]],
             generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """{"loss_rpn_cls", "loss_rpn_box"}: scalar tensors (see the module docstring)."""
        dense = self.build_targets(outputs.anchors, targets, image_sizes)
        masks = self.sampler.sample(dense.match_labels, generator)
        normalizer = masks.sampled.sum().clamp(min=1).float()
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
