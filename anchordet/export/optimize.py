"""Detector-level optimisation for deployment on CPU: network parts traced, frozen and optimized
by TorchScript. It acts on the detectors' network parts (``Detector.network_parts``), so it lives next to
export rather than with the conv + BN fold of ``ops.fuse``."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from anchordet.detectors.base import network_parts




def optimize_for_cpu_inference(model: nn.Module, example_images: Tensor,
                               parts: tuple[str, ...] | None = None) -> nn.Module:
    """A copy of a detector for CPU inference whose network parts are traced, frozen and
    optimized by TorchScript (``torch.jit.optimize_for_inference``: oneDNN convolutions with
    pre-packed weights, BN folded, ReLU and residual adds fused). ``predict`` and ``forward``
    keep their contracts; anchors, post-processing and everything data-dependent stay eager.

    Args:
        model: a detector (RetinaNet, SSD, Faster R-CNN); left unchanged.
        example_images: (B, 3, H, W) in [0, 1], a size the model accepts; the traced parts are
            shape-generic convolution stacks, other sizes work too (tested).
        parts: dotted attribute paths of the network modules to optimize (default: the detector's
            ``network_parts``); absent ones are skipped.
    Inference only (no gradients); outputs differ from eager by float rounding (~1e-5 relative).
    TorchScript is deprecated in recent PyTorch releases: this path is opt-in and may go.
    """
    import copy
    import warnings

    model = copy.deepcopy(model).eval()
    present = network_parts(model, parts)
    if not present:
        raise ValueError(f"{type(model).__name__} has none of the network parts {list(parts or ())}")
    captured: dict[str, tuple] = {}
    hooks = [module.register_forward_pre_hook(lambda module, args, p=p: captured.setdefault(p, args))
             for p, module in present.items()]
    try:
        with torch.no_grad():
            model(example_images)
    finally:
        for hook in hooks:
            hook.remove()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        for path in present:
            if path not in captured:  # not reached by forward (e.g. the RoI head)
                continue
            traced = torch.jit.trace(present[path], captured[path], strict=False, check_trace=False)
            model.set_submodule(path, torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval())))
    return model
