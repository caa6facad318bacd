"""The network parts of the detectors: the convolution stacks between the input and the
data-dependent steps (anchors, proposals, RoI pooling, losses, post-processing). Precision
(``engine.precision``) and the traced CPU path (``export.optimize``) act on these and nothing else."""
from __future__ import annotations

from torch import nn

# Dotted attribute paths over RetinaNet, SSD and Faster R-CNN; a detector lacks some (SSD: "fpn").
NETWORK_PARTS = ("backbone", "fpn", "head", "rpn.head", "roi_head")


def network_parts(model: nn.Module, parts: tuple[str, ...] = NETWORK_PARTS) -> dict[str, nn.Module]:
    """The submodules at the dotted ``parts`` paths that ``model`` has, by path."""
    found = {}
    for path in parts:
        try:
            found[path] = model.get_submodule(path)
        except AttributeError:
            continue
    return found
