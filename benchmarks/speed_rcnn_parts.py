"""Faster R-CNN outside the network: anchordet vs torchvision on the same anchors and proposals.

    OMP_NUM_THREADS=1 python benchmarks/speed_rcnn_parts.py [--size 800] [--repeats 7] [--threads 1]

The networks differ (ours R50-C4, torchvision's R50-FPN), so the whole-model figures of
benchmarks/speed.py cannot isolate the non-network parts. Here both sides get identical tensors:
one stride-16 level of (size/16)^2 x 9 anchors (ours; torchvision's RPN takes the same list as a
single level), random objectness and deltas, 6 gt boxes, the same settings (pre-NMS top-n 6000 /
12000, post-NMS 1000 / 2000, NMS 0.7; RoI sampling 512 at 25% positives; 91 logits). Timed, A, B
interleaved, medians:
  rpn_train    targets for every anchor, sampling 256, RPN losses
  proposals    top-n, decode, clip, small-box removal, NMS (test settings)
  roi_sample   proposals + gt matched, sampled, encoded (training proposals)
  postprocess  softmax, per-class decode, clip, threshold, per-class NMS on 1000 RoIs
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def build_inputs(size: int, seed: int = 0):
    from anchordet.anchors.grid import GridAnchorGenerator
    from anchordet.structures.targets import Targets

    gen = torch.Generator().manual_seed(seed)
    anchors = GridAnchorGenerator(((128.0, 256.0, 512.0),), (0.5, 1.0, 2.0), (16,)).grid_anchors(
        [(size // 16, size // 16)])[0]
    objectness = torch.randn(1, len(anchors), generator=gen)
    deltas = torch.randn(1, len(anchors), 4, generator=gen) * 0.1
    wh = torch.rand(6, 2, generator=gen) * size * 0.4 + 32
    xy = torch.rand(6, 2, generator=gen) * (size - wh)
    targets = [Targets(torch.cat([xy, xy + wh], 1), torch.randint(0, 90, (6,), generator=gen),
                       torch.zeros(6, dtype=torch.bool))]
    return anchors, objectness, deltas, targets


def ours_parts(size: int, anchors, objectness, deltas, targets, roi_logits, roi_deltas):
    from anchordet.detectors.rpn import RPNOutputs
    from anchordet.losses.roi_targets import RoITargetBuilder
    from anchordet.postprocess.proposals import ProposalSettings
    from anchordet.detectors.faster_rcnn import faster_rcnn_resnet18_c4
    from anchordet.postprocess.roi import RoIPostprocess
    from anchordet.sampling.balanced import BalancedSampler

    rpn = faster_rcnn_resnet18_c4(90, backbone_width=8).rpn  # only its non-network blocks are used
    sizes = [(size, size)]
    outputs = RPNOutputs(objectness, deltas, anchors)
    test, train = ProposalSettings(6000, 1000), ProposalSettings(12000, 2000)
    proposals = rpn.proposal_generator(objectness, deltas, anchors, sizes, rpn.box_coder, test).boxes
    train_proposals = rpn.proposal_generator(objectness, deltas, anchors, sizes, rpn.box_coder, train).boxes
    roi_builder = RoITargetBuilder(sampler=BalancedSampler(512, 0.25))
    post = RoIPostprocess()
    gen = torch.Generator().manual_seed(0)
    return {
        "rpn_train": lambda: rpn.loss(outputs, targets, sizes, gen),
        "proposals": lambda: rpn.proposal_generator(objectness, deltas, anchors, sizes, rpn.box_coder, test),
        "roi_sample": lambda: roi_builder.build(train_proposals, targets, 90, gen),
        "postprocess": lambda: post(roi_logits, roi_deltas, proposals, sizes, roi_builder.box_coder),
    }, proposals, train_proposals


def tv_parts(size: int, anchors, objectness, deltas, targets, roi_logits, roi_deltas, proposals, train_proposals):
    from torchvision.models.detection.faster_rcnn import FasterRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    model = FasterRCNN(resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=0), 91,
                       rpn_pre_nms_top_n_test=6000, rpn_post_nms_top_n_test=1000,
                       rpn_pre_nms_top_n_train=12000, rpn_post_nms_top_n_train=2000,
                       box_batch_size_per_image=512)
    rpn, roi_heads = model.rpn, model.roi_heads
    sizes = [(size, size)]
    tv_targets = [{"boxes": t.boxes, "labels": t.labels + 1} for t in targets]
    obj_flat, deltas_flat = objectness.reshape(-1, 1), deltas.reshape(-1, 4)

    def rpn_train():
        rpn.train()
        labels, matched = rpn.assign_targets_to_anchors([anchors], tv_targets)
        regression_targets = rpn.box_coder.encode(matched, [anchors])
        return rpn.compute_loss(obj_flat, deltas_flat, labels, regression_targets)

    def proposals_call():
        rpn.eval()
        decoded = rpn.box_coder.decode(deltas_flat.detach(), [anchors]).view(1, -1, 4)
        return rpn.filter_proposals(decoded, obj_flat, sizes, [len(anchors)])

    def roi_sample():
        roi_heads.train()
        return roi_heads.select_training_samples(list(train_proposals), tv_targets)

    def postprocess():
        return roi_heads.postprocess_detections(roi_logits_tv, roi_deltas_tv, list(proposals), sizes)

    # torchvision's logits put background first: move ours (background last) to the front.
    roi_logits_tv = torch.cat([roi_logits[:, -1:], roi_logits[:, :-1]], 1)
    d = roi_deltas.view(len(roi_deltas), -1, 4)
    roi_deltas_tv = torch.cat([d[:, -1:], d[:, :-1]], 1).reshape(len(roi_deltas), -1)
    return {"rpn_train": rpn_train, "proposals": proposals_call, "roi_sample": roi_sample,
            "postprocess": postprocess}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    anchors, objectness, deltas, targets = build_inputs(args.size)
    gen = torch.Generator().manual_seed(1)
    roi_logits = torch.randn(1000, 91, generator=gen) * 2
    roi_deltas = torch.randn(1000, 91 * 4, generator=gen) * 0.1
    ours, proposals, train_proposals = ours_parts(args.size, anchors, objectness, deltas, targets,
                                                  roi_logits[:0], roi_deltas[:0])
    num_rois = len(proposals[0])
    roi_logits, roi_deltas = roi_logits[:num_rois], roi_deltas[:num_rois]
    ours, _, _ = ours_parts(args.size, anchors, objectness, deltas, targets, roi_logits, roi_deltas)
    theirs = tv_parts(args.size, anchors, objectness, deltas, targets, roi_logits, roi_deltas, proposals,
                      train_proposals)
    print(f"{len(anchors)} anchors, {num_rois} test proposals, {len(train_proposals[0])} training proposals, "
          f"torch threads {torch.get_num_threads()}")
    print("| part | ours ms | torchvision ms | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    totals = [0.0, 0.0]
    with torch.no_grad():
        for part in ours:
            times = ([], [])
            ours[part](), theirs[part]()  # warm-up
            for _ in range(args.repeats):
                for fn, bucket in ((ours[part], times[0]), (theirs[part], times[1])):
                    start = time.perf_counter()
                    fn()
                    bucket.append(time.perf_counter() - start)
            med = [statistics.median(t) * 1e3 for t in times]
            totals = [a + b for a, b in zip(totals, med)]
            print(f"| {part} | {med[0]:.1f} | {med[1]:.1f} | {med[1] / med[0]:.2f}x |")
    print(f"| all four | {totals[0]:.1f} | {totals[1]:.1f} | {totals[1] / totals[0]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
