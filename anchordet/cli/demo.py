"""``anchordet demo``: the README's main job on the built-in digits dataset, on a short budget.

Trains the ``retinanet_digits`` preset on the CPU (or GPU when there is one), evaluates it on the
unseen test scenes, and runs ``predict`` on a few of them, printing where everything went.
"""
from __future__ import annotations

import argparse
from pathlib import Path

DEMO_PRESET = "retinanet_digits"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="train, evaluate and predict on the built-in digits dataset",
        description=f"Train the {DEMO_PRESET} preset on generated digit scenes, evaluate it on unseen test "
                    "scenes (COCO AP) and draw its detections on a few of them. Outputs go to --out.")
    parser.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="further config overrides, as for `anchordet train`")
    parser.add_argument("--device", default="auto")
    return parser


def run(args) -> int:
    from anchordet.cli import predict
    from anchordet.cli.common import load_config_or_fail
    from anchordet.data.spec import build_dataset
    from anchordet.engine.data import dataset_spec
    from anchordet.engine.trainer import Trainer
    from anchordet.visualize import to_pil

    out = Path(args.out)
    overrides = [f"run.out_dir={out / 'run'}", f"run.device={args.device}"]
    if args.epochs:
        overrides.append(f"solver.epochs={args.epochs}")
    config = load_config_or_fail(DEMO_PRESET, overrides + list(args.overrides))
    print(f"training {DEMO_PRESET} for {config.solver.epochs} epochs of {config.data.digits_train_images} "
          f"scenes; evaluating on {config.data.digits_val_images} unseen test scenes")
    outcome = Trainer(config).fit()
    if outcome.status != "finished":
        print(f"training {outcome.status}; resume with: anchordet train --resume {outcome.last_checkpoint}")
        return 130 if outcome.status == "interrupted" else 0
    test_images = out / "test_images"
    test_images.mkdir(parents=True, exist_ok=True)
    test_set = build_dataset(dataset_spec(config.data), split="val")
    for index in range(6):
        to_pil(test_set[index].image).save(test_images / f"scene_{index}.png")
    weights = Path(config.run.out_dir) / "model.safetensors"
    predict.run(argparse.Namespace(inputs=[str(test_images)], weights=str(weights), out=str(out / "predictions"),
                                   score_thresh=0.3, batch_size=6, min_size=None, max_size=None, device=args.device))
    run_dir = Path(config.run.out_dir)
    print(f"\nbest COCO AP on the test scenes: {outcome.best_metric:.3f} (all numbers in {run_dir / 'metrics.jsonl'})")
    print(f"weights: {weights}\ncurves: {run_dir / 'curves.png'}\npictures: {out / 'predictions'}")
    return 0
