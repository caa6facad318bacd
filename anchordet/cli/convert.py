"""``anchordet convert``: torchvision detection weights -> anchordet safetensors, and back."""
from __future__ import annotations

import argparse
from pathlib import Path

from anchordet.cli.common import positive_int
from anchordet.cli.main import UserError

ARCHS = ("retinanet_resnet50_fpn", "ssd300_vgg16")
COCO_ENUMS = {"retinanet_resnet50_fpn": "RetinaNet_ResNet50_FPN_Weights", "ssd300_vgg16": "SSD300_VGG16_Weights"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert", help="convert torchvision weights to anchordet safetensors",
        description="Convert torchvision's retinanet_resnet50_fpn (v1) or ssd300_vgg16 weights into an anchordet "
                    "weights file (.safetensors with the model config, class names and COCO category ids, ready "
                    "for predict, evaluate and export), or with --to torchvision an anchordet file back into a "
                    "torchvision state dict (.pth).",
        epilog="examples:\n"
               "  anchordet convert coco --arch retinanet_resnet50_fpn --out retinanet_coco.safetensors\n"
               "  anchordet convert ssd300_vgg16_coco-b556d3b4.pth --arch ssd300_vgg16 --out ssd300_coco.safetensors\n"
               "  anchordet convert retinanet_coco.safetensors --to torchvision --out retinanet_tv.pth",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a torchvision state dict (.pth / .safetensors); 'coco' for torchvision's "
                                       "COCO weights of --arch from the torch hub cache; with --to torchvision an "
                                       "anchordet weights file")
    parser.add_argument("--arch", choices=ARCHS, help="the torchvision architecture of SOURCE")
    parser.add_argument("--out", required=True, help="output file: .safetensors (anchordet) or .pth (torchvision)")
    parser.add_argument("--to", choices=("anchordet", "torchvision"), default="anchordet")
    parser.add_argument("--labels", help="comma-separated torchvision labels that become classes 0..K-1 (default: "
                                         "the 80 COCO ids for 91-logit models, else 1..C-1)")
    parser.add_argument("--class-names", help="comma-separated names of those classes")
    parser.add_argument("--bn-eps", type=float, default=None,
                        help="eps of the source's frozen batch norms (default 0: torchvision's COCO RetinaNet)")
    parser.add_argument("--min-size", type=positive_int, default=800, help="--to torchvision: RetinaNet's internal resize")
    parser.add_argument("--max-size", type=positive_int, default=1333, help="--to torchvision: RetinaNet's internal resize")
    return parser


def run(args) -> int:
    if args.to == "torchvision":
        return _to_torchvision(args)
    from anchordet.weights_file import save_weights
    from anchordet.interop.torchvision import from_torchvision

    if not args.arch:
        raise UserError("--arch is required to read torchvision weights (retinanet_resnet50_fpn or ssd300_vgg16)")
    if Path(args.out).suffix != ".safetensors":
        raise UserError(f"--out {args.out}: anchordet weights are written as .safetensors")
    source = _coco_weights(args.arch) if args.source == "coco" else args.source
    converted = from_torchvision(source, args.arch, labels=_ints(args.labels, "--labels"),
                                 class_names=args.class_names.split(",") if args.class_names else None,
                                 bn_eps=args.bn_eps)
    save_weights(args.out, converted.model, converted.config, converted.metadata())
    config = converted.config
    print(f"wrote {args.out}: {config.factory} ({args.arch}), {config.num_classes} classes "
          f"({converted.class_names[0]} .. {converted.class_names[-1]}), labels 0..{config.num_classes - 1} = "
          f"torchvision labels {converted.category_ids[0]} .. {converted.category_ids[-1]}")
    print(f"eval input: {_describe(converted.inference)}")
    if converted.dropped_softmax_labels:
        print(f"note: the {len(converted.dropped_softmax_labels)} torchvision labels not kept leave the softmax: each "
              f"score is torchvision's / (1 - their probability); nothing for trained COCO weights, whose unused "
              f"ids never fire, about +12% on untrained ones (docs/export.md)")
    return 0


def _to_torchvision(args) -> int:
    import torch

    from anchordet.cli.common import load_model_for_inference
    from anchordet.files import atomic_write
    from anchordet.interop.torchvision_models import to_torchvision

    model, _, settings, _ = load_model_for_inference(args.source, "cpu")
    category_ids = _ints(args.labels, "--labels") or list(settings.category_ids) or None
    tv = to_torchvision(model, category_ids, min_size=args.min_size, max_size=args.max_size)
    state = tv.state_dict()
    atomic_write(args.out, lambda f: torch.save(state, f))
    num_classes = max(category_ids) + 1 if category_ids else model.num_classes + 1
    print(f"wrote {args.out}: torchvision {type(tv).__name__} state dict; build the torchvision model with "
          f"num_classes={num_classes} to load it")
    return 0


def _coco_weights(arch: str):
    import torchvision.models.detection as detection

    return getattr(detection, COCO_ENUMS[arch]).COCO_V1


def _ints(text: str | None, option: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError as exc:
        raise UserError(f"{option} {text!r}: expected comma-separated integers") from exc


def _describe(settings) -> str:
    if settings.eval_transform == "fixed":
        return f"resized to {settings.fixed_size} x {settings.fixed_size}"
    return f"shorter side {settings.min_size}, longer side at most {settings.max_size} (keep ratio)"
