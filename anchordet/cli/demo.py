"""``anchordet demo``: the README's main job on the built-in digits dataset, on a short budget.

Trains the ``ssd_digits`` preset (a quarter-width VGG16 SSD at the scenes' own 128 px, bf16 where
the CPU computes it natively) on the CPU (or GPU when there is one), evaluates it on the unseen
test scenes, and runs ``predict`` on a few of them, printing where everything went.

Why SSD: of the digits presets it reaches the highest test AP50 per minute of CPU training
(BENCHMARKS.md "The digits presets in bf16"): on the Intel Xeon (AMX) of 2026-12-02 the 7-minute
budget gave it test AP50 0.947 (17 epochs), where ``retinanet_digits_fast`` (the demo's model until
then) ends near 0.82.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from anchordet.cli.common import add_procs_argument, device_name

DEMO_PRESET = "ssd_digits"
# At most the preset's 20 epochs, as many as fit DEMO_MINUTES (run.fit_epochs_to_budget): 17 on 2
# idle cores of the Intel Xeon (AMX, bf16) of 2026-12-02 (75-95 img/s as its host's load drifts);
# a CPU without native bf16 trains in fp32 and fits fewer (the Zen 3 VM of 2026-11-23 ran this SSD
# at 22-25 img/s).
DEMO_EPOCHS = 20
DEMO_MINUTES = 7.0


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="train, evaluate and predict on the built-in digits dataset",
        description=f"Train the {DEMO_PRESET} preset on generated digit scenes, evaluate it on unseen test "
                    "scenes (COCO AP) and draw its detections on a few of them. Outputs go to --out.")
    parser.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS,
                        help=f"most training epochs; fewer when they would not fit --minutes (default {DEMO_EPOCHS})")
    parser.add_argument("--minutes", type=float, default=DEMO_MINUTES,
                        help="training time budget: the first iterations are timed and the schedule is shortened "
                             f"to what fits (run.fit_epochs_to_budget); 0 for none (default {DEMO_MINUTES:g})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="further config overrides, as for `anchordet train`")
    parser.add_argument("--device", type=device_name, default="auto")
    add_procs_argument(parser, default="auto")
    return parser


def run(args) -> int:
    from anchordet.cli import predict
    from anchordet.cli.common import load_config_or_fail, resolve_procs
    from anchordet.data.spec import build_dataset
    from anchordet.engine.data import dataset_spec
    from anchordet.engine.interrupt import exit_status
    from anchordet.engine.logger import read_metrics
    from anchordet.engine.run_folder import RunFolder
    from anchordet.engine.trainer import train
    from anchordet.visualize import save_picture, to_pil

    out = Path(args.out)
    overrides = [f"run.out_dir={out / 'run'}", f"run.device={args.device}", f"solver.epochs={args.epochs}",
                 f"run.max_minutes={args.minutes}", f"run.fit_epochs_to_budget={args.minutes > 0}",
                 f"run.eval_every={args.epochs}"]
    config = load_config_or_fail(DEMO_PRESET, overrides + list(args.overrides))
    processes = resolve_procs(args.procs, args.device)
    budget = f"as many as fit {args.minutes:g} minutes" if args.minutes > 0 else "no time budget"
    print(f"training {DEMO_PRESET} for at most {config.solver.epochs} epochs of {config.data.digits.num_train} "
          f"scenes ({budget}, {processes} process{'es' if processes > 1 else ''}); "
          f"evaluating on {config.data.digits.num_val} unseen test scenes", flush=True)
    if RunFolder(config.run.out_dir).previous_run():
        print(f"replacing the previous demo run in {config.run.out_dir}", flush=True)
    try:  # a budget stop still scores and keeps what was learned (finish_on_budget)
        outcome = train(config, processes=processes, finish_on_budget=True, overwrite=True)
    except KeyboardInterrupt:
        outcome = None
    if outcome is None or outcome.status == "interrupted":
        print(f"training interrupted; resume with: anchordet train --resume {Path(config.run.out_dir) / 'last.pt'}")
        return exit_status(outcome.stop_signal if outcome is not None else 0)
    if outcome.status == "stopped":
        print(f"the {args.minutes:g}-minute budget stopped training at iteration {outcome.iteration}; "
              f"continue with: anchordet train --resume {outcome.last_checkpoint} --set run.max_minutes=0")
    test_images = out / "test_images"
    test_images.mkdir(parents=True, exist_ok=True)
    test_set = build_dataset(dataset_spec(config.data), split="val")
    for index in range(min(6, len(test_set))):
        save_picture(to_pil(test_set[index].image), test_images / f"scene_{index}.png")
    weights = Path(config.run.out_dir) / "model.safetensors"
    predict.run(_predict_arguments(predict, [str(test_images), "--weights", str(weights), "--out",
                                             str(out / "predictions"), "--score-thresh", "0.3", "--batch-size", "6",
                                             "--device", args.device]))
    run_dir = Path(config.run.out_dir)
    final = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "eval"][-1]
    print(f"\ntest scenes: COCO AP {final['AP']:.3f}, AP50 {final['AP50']:.3f} "
          f"(all numbers in {run_dir / 'metrics.jsonl'})")
    print(f"weights: {weights}\ncurves: {run_dir / 'curves.png'}\npictures: {out / 'predictions'}")
    return 0


def _predict_arguments(predict, argv: list[str]) -> argparse.Namespace:
    """``predict``'s arguments parsed by its own parser, so every option it has gets its default."""
    parser = argparse.ArgumentParser(prog="anchordet")
    return predict.add_parser(parser.add_subparsers()).parse_args(argv)
