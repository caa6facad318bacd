"""Do the COCO presets learn at their own input sizes? A short run per family on large digits scenes.

For each family's COCO preset (``retinanet_r50_coco``, ``ssd300_coco``, ``faster_rcnn_r50_c4_coco``)
the architecture, anchors and input sizes stay the preset's (RetinaNet and Faster R-CNN: shorter
side 640..800, multi-scale; SSD: 300 x 300); the data are digits scenes of 640 x 640 px with 6..12
digits of 40..120 px (``data.digits``), and, since no pretrained backbone can be read here,
training starts from scratch: random backbone (``model.backbone_weights=none``), every layer
trainable with batch statistics (``frozen_bn=false``, ``trainable_layers=5``), 10 classes, and the
optimizer of the digits presets, which train from scratch: AdamW, learning rate 3e-3 for a batch
of 16 scaled linearly to ``--batch``, weight decay 0.05, gradient clipping 10, a ``--warmup``
iteration warmup (the COCO presets' SGD at 0.01 with a 500-iteration warmup is a recipe for
ImageNet-initialised backbones and would outlast the run).

Each run logs the training loss every iteration and evaluates (COCO AP50 on ``--val`` test
scenes) after every ``--eval-every`` iterations; the script prints the loss averaged over each
window and the AP50 after it, and writes them as JSON. Seeds and iteration counts are fixed, so
the figures are the same on any run of the same machine kind (wall times are not: busy machine).

    OMP_NUM_THREADS=1 python benchmarks/real_sizes.py --families ssd --iterations 120 --out runs/real
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

FAMILIES = {"retinanet": "retinanet_r50_coco", "ssd": "ssd300_coco", "faster_rcnn": "faster_rcnn_r50_c4_coco"}
SCENES = ["data.dataset=digits", "data.digits.canvas_size=640", "data.digits.digits_per_image=[6, 12]",
          "data.digits.digit_size=[40, 120]", "model.num_classes=10"]
FROM_SCRATCH = ["model.backbone_weights=none", "model.frozen_bn=false", "model.trainable_layers=5"]
# the VGG16 of SSD has no BN and names its trainable part differently
SSD_FROM_SCRATCH = ["model.backbone_weights=none", "model.trainable_layers=5"]


def overrides(family: str, args, out: Path) -> list[str]:
    scratch = SSD_FROM_SCRATCH if family == "ssd" else FROM_SCRATCH
    return SCENES + scratch + [
        f"data.digits.num_train={args.eval_every * args.batch}", f"data.digits.num_val={args.val}",
        f"solver.epochs={args.iterations // args.eval_every}", f"solver.batch_size={args.batch}",
        f"solver.warmup_iters={args.warmup}", "solver.optimizer=adamw", "solver.base_lr=0.003",
        "solver.base_batch_size=16", "solver.weight_decay=0.05", "solver.clip_grad_norm=10.0",
        "solver.schedule=cosine", "run.eval_every=1", "run.log_every=1", "data.num_workers=0",
        f"run.threads={args.threads}", f"run.precision={args.precision}", "run.device=cpu", f"run.out_dir={out}"]


def run(family: str, args) -> dict:
    from anchordet.config.load import load_config
    from anchordet.engine.trainer import train

    out = Path(args.out) / family
    config = load_config(FAMILIES[family], overrides(family, args, out))
    started = time.monotonic()
    train(config, progress=False, overwrite=True)
    seconds = time.monotonic() - started
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["type"] == "train"]
    windows = [sum(losses[i:i + args.eval_every]) / len(losses[i:i + args.eval_every])
               for i in range(0, len(losses), args.eval_every)]
    ap50 = [r["AP50"] for r in records if r["type"] == "eval"]
    result = {"preset": FAMILIES[family], "iterations": len(losses), "batch": args.batch,
              "loss_per_window": windows, "ap50_after_window": ap50, "seconds": seconds,
              "seconds_per_iteration": seconds / max(1, len(losses)),
              "precision": next((r["precision"] for r in records if "precision" in r), None)}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=sorted(FAMILIES))
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--val", type=int, default=20, help="test scenes per evaluation")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", default="runs/real_sizes")
    args = parser.parse_args()
    results = [run(family, args) for family in args.families]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "real_sizes.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
