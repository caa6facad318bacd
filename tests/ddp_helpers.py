"""Module-level pieces of tests/detectors/test_ddp.py: spawned processes import them by name
(``tests/`` is on the children's ``sys.path``, which spawn hands down), not the test module."""
from __future__ import annotations

import torch

from anchordet import Targets

FAMILIES = ("retinanet", "ssd", "faster_rcnn")


def tiny_detector(family: str):
    """A tiny detector of each family, the same weights in every process (seeded). Frozen or no
    BN and no dropout, and samplers that keep every candidate (the RPN's and RoI head's
    256 / 128 per image would draw a random subset), so that only the loss normalisers can make
    two processes differ from one."""
    from anchordet.detectors.faster_rcnn import faster_rcnn_resnet18_c4
    from anchordet.detectors.retinanet import retinanet_resnet_fpn
    from anchordet.detectors.ssd import ssd_vgg16

    torch.manual_seed(0)
    if family == "retinanet":
        return retinanet_resnet_fpn(18, 3, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=1,
                                    anchor_base_sizes=(16, 32, 64, 128, 256))
    if family == "ssd":
        return ssd_vgg16(3, image_size=64, width=8, extra_layers=[[16, 32, 3, 2, 1]], steps=[8, 16, 32],
                         min_sizes=[12, 24, 40], max_sizes=[24, 40, 64], aspect_ratios=[[2.0]] * 3)
    return faster_rcnn_resnet18_c4(3, backbone_width=8, anchor_sizes=(16, 32, 64), rpn_allowed_border=None,
                                   rpn_min_size=0.0, rpn_batch_size_per_image=100_000, rpn_post_nms_top_n_train=64,
                                   roi_batch_size_per_image=100_000, roi_pool="align", roi_output_size=6)


def global_batch() -> tuple[torch.Tensor, list[Targets]]:
    """4 images of 64 x 64; images 0 and 1 (process 0's half) hold 3 and 2 objects, images 2 and
    3 (process 1's) one and none: the halves have different positive and sampled counts."""
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, 64, 64, generator=generator)
    boxes = [[[4, 4, 28, 36], [30, 8, 60, 30], [10, 40, 34, 60]], [[8, 8, 40, 40], [36, 30, 62, 62]],
             [[20, 16, 44, 52]], []]
    targets = [Targets(torch.tensor(b, dtype=torch.float32).reshape(-1, 4), torch.arange(len(b)) % 3) for b in boxes]
    return images, targets


def gradients(family: str, images, targets, ddp: bool = False) -> dict[str, torch.Tensor]:
    """The loss's gradients of every parameter: in this process alone, or (``ddp``) averaged by
    DistributedDataParallel over the process group."""
    from anchordet.engine.trainer import LossModule

    model = tiny_detector(family)
    module = LossModule(model)
    if ddp:
        module = torch.nn.parallel.DistributedDataParallel(module)
    sum(module(images, targets).values()).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def ddp_differences() -> dict[str, tuple[str, float, int]]:
    """In each of 2 processes: per family, DDP-averaged gradients of this process's half of
    ``global_batch`` against one process's gradients of the whole batch (computed here too).
    Returns family -> (worst parameter, its max |difference| / max |gradient|, parameters
    compared, or -1 when the two sets of names differ): a few numbers, as a large result could
    not pass the launcher's result pipe before the processes are joined."""
    from anchordet import distributed

    distributed.init_from_environment(torch.device("cpu"))
    rank = distributed.rank()
    images, targets = global_batch()
    half = slice(2 * rank, 2 * rank + 2)
    result = {}
    for family in FAMILIES:
        got = gradients(family, images[half], targets[half], ddp=True)
        expected = gradients(family, images, targets)
        errors = {name: float((got[name] - grad).abs().max() / grad.abs().max().clamp(min=1e-12))
                  for name, grad in expected.items() if name in got}
        worst = max(errors, key=errors.get)
        result[family] = (worst, errors[worst], len(errors) if set(got) == set(expected) else -1)
    return result
