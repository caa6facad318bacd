"""Shape-only forward passes on the ``meta`` device: what sizes a network's feature maps have for
an input size, without computing anything and without touching (or copying) its weights."""
from __future__ import annotations

import itertools
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call


def feature_map_sizes(modules: Sequence[nn.Module], input_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(H_l, W_l) of every feature map that ``modules``, applied in turn, make from an input of
    ``input_size`` (height, width).

    Each module runs with meta copies of its parameters and buffers (``functional_call``), so its
    own tensors and a BN's running statistics are left as they were, in any mode. The batch has
    2 images: a training-mode BN on a 1 x 1 map needs more than one value per channel.
    """
    x = torch.zeros((2, 3, *input_size), device="meta")
    with torch.no_grad():
        for module in modules:
            state = {name: t.to("meta") for name, t in itertools.chain(module.named_parameters(), module.named_buffers())}
            x = functional_call(module, state, (x,))
    features = x if isinstance(x, (list, tuple)) else [x]
    return [(int(f.shape[-2]), int(f.shape[-1])) for f in features]
