"""Helpers shared by several test files (not collected: the name does not start with test_)."""
from __future__ import annotations

import torch

from anchordet.data.shapes import all_found


def assert_detections_equal(flat: list[torch.Tensor], expected: list, box_tol=1e-4, score_tol=1e-5, min_count=20):
    """Flat exported detections (boxes, scores, labels, batch_index) == ``predict``'s per image:
    each of predict's detections pairs with one exported detection of the same image and label,
    score within ``score_tol`` and box within ``box_tol``. Order is not compared: scores that
    are equal (sigmoid saturates at 1.0) or 1e-7 apart may come out in either order."""
    boxes, scores, labels, batch_index = flat
    assert len(boxes) == sum(len(d.boxes) for d in expected)
    free = torch.ones(len(boxes), dtype=torch.bool)
    for b, det in enumerate(expected):
        assert int((batch_index == b).sum()) == len(det.boxes) >= min_count  # enough to mean something
        for box, score, label in zip(det.boxes, det.scores, det.labels):
            close = (free & (batch_index == b) & (labels == label) & ((scores - score).abs() <= score_tol)
                     & ((boxes - box).abs().amax(dim=1) <= box_tol))
            assert close.any(), f"image {b}: no exported match for {label.item()} {box.tolist()} {score.item():.6f}"
            free[torch.nonzero(close)[0, 0]] = False


def assert_overfits(model, images, targets, max_steps: int, check_every: int, **loss_options) -> None:
    """Adam at 2e-3 on ``model.loss`` until ``predict`` finds every box (``all_found``), checked
    every ``check_every`` steps; fails after ``max_steps``."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    found = False
    for step in range(max_steps):
        model.train()
        loss = sum(model.loss(images, targets, **loss_options).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % check_every == check_every - 1:
            found = all_found(model.eval().predict(images), targets)
            if found:
                break
    assert found, f"not every box found after {step + 1} steps (loss {loss.item():.4f})"


def collectives_in_a_process_group() -> dict:
    """Run in each process of a 2-process gloo group (``anchordet.engine.launch.run_processes``):
    every collective of ``anchordet.distributed`` with values that differ by rank; returns
    what each rank got (gathered), so the parent checks both."""
    from anchordet import distributed as D

    D.init_from_environment(torch.device("cpu"))
    rank = D.rank()
    got = {
        "device": str(D.collective_device()),
        "sums": D.all_reduce_sums({"a": rank + 1.0, "b": 2.5}),
        "any": [D.any_process(rank == 1), D.any_process(False)],
        "all": [D.all_processes(rank == 0), D.all_processes(True)],
        "min": D.min_over_processes(10 - 3 * rank),
        "mean": float(D.reduce_mean(torch.tensor(float(rank)))),
    }
    D.barrier()
    return D.all_gather_objects(got)


TINY_RETINANET = dict(depth=18, num_classes=10, backbone_width=8, fpn_channels=16, head_channels=16, head_num_convs=1,
                      frozen_bn=False, score_thresh=0.0, max_detections=20)
TINY_SSD = dict(num_classes=10, image_size=64, width=8, batch_norm=True, extra_layers=[[16, 32, 3, 2, 1]],
                steps=[8, 16, 32], min_sizes=[12, 24, 40], max_sizes=[24, 40, 64], aspect_ratios=[[2.0]] * 3,
                score_thresh=0.0)


def write_tiny_weights(path, factory: str = "retinanet_resnet_fpn", args: dict | None = None, settings: dict | None = None,
                       seed: int = 0):
    """A randomly initialised tiny detector saved as an anchordet weights file (RetinaNet resized
    to 96 x 96 by default, classes named digit0..digit9 with category ids 100..109). Returns the model."""
    import json

    from anchordet.config.schema import ModelConfig
    from anchordet.weights_file import save_weights

    config = ModelConfig(factory, args or (TINY_RETINANET if factory == "retinanet_resnet_fpn" else TINY_SSD))
    torch.manual_seed(seed)
    model = config.build().eval()
    info = {"eval_transform": "resize", "min_size": 96, "max_size": 96, "fixed_size": 0,
            "class_names": [f"digit{i}" for i in range(config.num_classes)],
            "category_ids": [100 + i for i in range(config.num_classes)]}
    if factory == "ssd_vgg16":
        info.update(eval_transform="fixed", fixed_size=int(config.args["image_size"]))
    info.update(settings or {})
    save_weights(path, model, config, {"anchordet_inference": json.dumps(info)})
    return model


def digit_scene_files(folder, count: int = 2, canvas_size: int = 64, prefix: str = "scene"):
    """Write ``count`` digits test scenes as PNGs into ``folder``; returns their paths."""
    from pathlib import Path

    from anchordet.config.schema import DigitsOptions
    from anchordet.data.digits import DigitsDataset
    from anchordet.visualize import to_pil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scenes = DigitsDataset("test", DigitsOptions(num_val=count, canvas_size=canvas_size))
    paths = []
    for i in range(count):
        paths.append(folder / f"{prefix}{i}.png")
        to_pil(scenes[i].image).save(paths[-1])
    return paths


def write_coco_dataset(folder, shapes, boxes=None, seed: int = 0, names=("a", "b"), crowd_every: int = 0,
                       empty_every: int = 0) -> "Path":
    """A small COCO dataset of noise PNGs with bright boxes under ``folder``: ``images/{train,val}``,
    ``annotations/instances_{train,val}.json`` and ``data.yaml``; returns the YAML's path.

    Args:
        shapes: (height, width) of each image (train and val hold the same images).
        boxes: x1, y1, x2, y2 boxes (fractions of the image) drawn in every image; None: 1-3
            random boxes per image.
        crowd_every, empty_every: every k-th image gets an iscrowd box / no object (0: none).
    """
    import json
    from pathlib import Path

    import numpy as np
    import yaml
    from PIL import Image

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id, (height, width) in enumerate(shapes, start=1):
        pixels = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
        empty = empty_every and image_id % empty_every == 0
        if empty:
            chosen = []
        elif boxes is not None:
            chosen = list(boxes)
        else:
            chosen = []
            for _ in range(int(rng.integers(1, 4))):
                x1, y1 = rng.uniform(0, 0.6, 2)
                chosen.append((x1, y1, x1 + rng.uniform(0.2, 0.4), y1 + rng.uniform(0.2, 0.4)))
        for k, (x1, y1, x2, y2) in enumerate(chosen):
            box = [round(x1 * width, 2), round(y1 * height, 2), round(x2 * width, 2), round(y2 * height, 2)]
            pixels[int(box[1]):int(box[3]), int(box[0]):int(box[2])] = 230 if k % 2 == 0 else 180
            crowd = int(bool(crowd_every) and image_id % crowd_every == 0 and k == 0)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1 + k % len(names),
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "area": (box[2] - box[0]) * (box[3] - box[1]), "iscrowd": crowd})
        name = f"img{image_id:03d}.png"
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for split in ("train", "val"):
            (folder / "images" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / "images" / split / name)
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)]}
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        (folder / "annotations" / f"instances_{split}.json").write_text(json.dumps(gt))
    spec = {"format": "coco", "names": list(names),
            **{s: {"images": f"images/{s}", "annotations": f"annotations/instances_{s}.json"} for s in ("train", "val")}}
    (folder / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "data.yaml"


def layout_anchors(kind: str, generator, matcher, strides, size_divisible: int, fixed_size: int | None = None,
                   allowed_border: float | None = None):
    """An anchor analysis ``DetectorAnchors`` for a generator without a model: the input padded to
    ``size_divisible``, feature maps of ceil(padded / stride) (ResNet + FPN round up so), what a
    detector's ``training_anchors`` gives."""
    import math

    from anchordet.analysis.anchors.model_anchors import DetectorAnchors, anchor_boxes
    from anchordet.anchors.training import TrainingAnchors
    from anchordet.structures.image_batch import padded_size

    def training_anchors(image_size):
        if fixed_size is not None and tuple(image_size) != (fixed_size, fixed_size):
            raise ValueError(f"this layout takes {fixed_size}x{fixed_size} inputs, got {image_size}")
        input_size = padded_size(image_size, size_divisible)
        sizes = [(math.ceil(input_size[0] / s), math.ceil(input_size[1] / s)) for s in strides]
        return TrainingAnchors(anchor_boxes(generator, sizes, input_size), sizes, input_size, tuple(image_size),
                               generator, matcher, allowed_border)

    return DetectorAnchors(training_anchors, kind, generator)


def preset_model(name: str, **args):
    """The detector of preset ``name`` with some of its model arguments replaced (randomly
    initialised; seed the RNG first for fixed weights)."""
    from anchordet.config.presets import PRESETS
    from anchordet.config.schema import ModelConfig

    model = PRESETS[name].model
    return ModelConfig(model.factory, {**model.args, **args}).build()


def spread_faster_rcnn_heads(model):
    """A random Faster R-CNN whose heads give spread outputs: each final layer redrawn and scaled
    so that its outputs have a set std on sample images (objectness 1, RPN deltas 0.2, class logits
    1, RoI deltas 0.5). The factories' N(0, 0.01) init gives near-equal scores, whose order a 1e-7
    difference between two runtimes would flip. Returns the model."""
    images = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0))

    def rescale(layer, inputs, std):
        layer.weight.normal_(0, 1)
        layer.weight.mul_(std / layer(inputs).std())

    with torch.no_grad():
        rpn_features = model.rpn.head.conv(model(images).features).relu()
        rescale(model.rpn.head.cls_logits, rpn_features, 1.0)
        rescale(model.rpn.head.bbox_pred, rpn_features, 0.2)
        seen = []
        hook = model.roi_head.predictor.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        model.predict(images)
        hook.remove()
        rescale(model.roi_head.predictor.cls_score, seen[0], 1.0)
        rescale(model.roi_head.predictor.bbox_pred, seen[0], 0.5)
    return model


def tiny_export_retinanet():
    """(config, model): a 3-class ResNet-18 RetinaNet at width 8 whose heads score and move boxes
    (random class and box biases), so an export comparison has detections to compare."""
    import torch
    from anchordet.config.schema import ModelConfig

    config = ModelConfig("retinanet_resnet_fpn", dict(depth=18, num_classes=3, backbone_width=8, fpn_channels=16,
                                                      head_channels=16, head_num_convs=1, max_detections=30))
    model = config.build().eval()
    with torch.no_grad():
        model.head.cls_output.weight.normal_(0, 0.3)
        model.head.cls_output.bias.normal_(-2.0, 1)
        model.head.box_output.bias.normal_(0, 0.3)
    return config, model
