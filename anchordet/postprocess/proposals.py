"""Region proposals from RPN outputs (Ren et al. 2015, Sec. 3.1-3.3; seed 003).

Per image the ``pre_nms_top_n`` highest-scoring anchors are decoded, clipped to the image, boxes
under ``min_size`` removed, NMS at 0.7, and the ``post_nms_top_n`` best kept. 12000 / 2000 for
training and 6000 / 300 for inference (Ren et al. Sec. 3.3 and 4; seed 003); the caller chooses
by passing the settings (``RegionProposalNetwork.loss`` vs ``predict``), never ``self.training``.

Vectorized over the batch in tensor ops (``ProposalGenerator.flat``, which export traces: top-k
counts and image sizes as tensors, one ``batched_nms`` call grouped by image, no loop over
images); ``ProposalGenerator.reference`` is the plain per-image version the tests compare against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
from torch import Tensor
from torchvision.models.detection._utils import _topk_min

from anchordet.coding.box_coder import BoxCoder
from anchordet.ops.nms import nms_reference
from anchordet.postprocess.select import image_sizes_tensor, nms_best_per_image
from anchordet.structures.boxes import clip_boxes, clip_boxes_to_sizes


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
