"""Does fine-tuning from a pretrained detector beat training from scratch on little data?

For each detector family: train on digits 0-4 (the "pretrained" source), then train on 100 fixed
training scenes of digits 5-9 for the same short budget twice: from the source's weights
(``model.init_weights``: every tensor but the class rows loads; the names 0-4 and 5-9 differ, so
no class row carries over) and from scratch. Both are scored on the 5-9 test scenes (COCO AP50).
The budgets are fixed epoch counts, so on a CPU the AP is the same on every run; wall times are
printed but depend on the machine and its load.

    OMP_NUM_THREADS=1 python benchmarks/transfer.py --out runs/transfer     # the BENCHMARKS.md table
    python benchmarks/transfer.py --families retinanet --source-epochs 2    # a quick look
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SOURCE_CLASSES = [0, 1, 2, 3, 4]
TARGET_CLASSES = [5, 6, 7, 8, 9]
# preset and the overrides that make it small enough for a CPU table (all arms share them)
FAMILIES = {
    "retinanet": ("retinanet_digits_fast", []),
    "ssd": ("ssd_digits", []),
    "faster_rcnn": ("faster_rcnn_digits", ["data.min_size=128", "data.max_size=128",
                                           "model.anchor_sizes=[12, 16, 24, 32, 48]"]),
}
COMMON = ["data.num_workers=0", "run.threads=1", "run.eval_every=0", "run.log_every=50", "solver.warmup_iters=50"]


def arm_overrides(args, arm: str, out: Path, source_weights: Path | None) -> list[str]:
    if arm == "source":
        return [f"data.digits.classes={SOURCE_CLASSES}", f"model.num_classes={len(SOURCE_CLASSES)}",
                f"data.digits.num_train={args.source_images}", f"solver.epochs={args.source_epochs}",
                "data.digits.num_val=100", f"run.out_dir={out}"]
    overrides = [f"data.digits.classes={TARGET_CLASSES}", f"model.num_classes={len(TARGET_CLASSES)}",
                 f"data.digits.num_train={args.target_images}", "data.digits.fixed_train=true",
                 f"solver.epochs={args.target_epochs}", f"solver.batch_size={args.target_batch}",
                 f"solver.base_batch_size={args.target_batch}", f"data.digits.num_val={args.test_images}",
                 f"run.out_dir={out}"]
    if arm == "finetune":
        overrides.append(f"model.init_weights={source_weights}")
    return overrides


def run_arm(preset: str, overrides: list[str]) -> tuple[float, float, int, float]:
    """(test AP50, wall seconds, iterations, CPU seconds) of one training run."""
    from anchordet.config.load import load_config
    from anchordet.engine.trainer import train

    config = load_config(preset, overrides)
    started, cpu_started = time.monotonic(), time.process_time()
    outcome = train(config, progress=False)
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu_started
    evals = [json.loads(line) for line in (Path(config.run.out_dir) / "metrics.jsonl").read_text().splitlines()]
    ap50 = [r for r in evals if r["type"] == "eval"][-1]["AP50"]
    return float(ap50), seconds, outcome.iteration, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/transfer")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--source-images", type=int, default=1000, help="0-4 scenes per source epoch (new each epoch)")
    parser.add_argument("--source-epochs", type=int, default=4)
    parser.add_argument("--target-images", type=int, default=100, help="fixed 5-9 training scenes")
    parser.add_argument("--target-epochs", type=int, default=20)
    parser.add_argument("--target-batch", type=int, default=10)
    parser.add_argument("--test-images", type=int, default=300, help="5-9 test scenes scored")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    rows = []
    for family in args.families.split(","):
        preset, extra = FAMILIES[family]
        source_dir = out / family / "source"
        ap_source, t_source, _, cpu = run_arm(preset, COMMON + extra + arm_overrides(args, "source", source_dir, None))
        row = {"family": family, "preset": preset, "source_ap50_0to4": ap_source, "source_seconds": t_source,
               "cpu_seconds": cpu}
        for arm in ("finetune", "scratch"):
            overrides = arm_overrides(args, arm, out / family / arm, source_dir / "model.safetensors")
            ap, seconds, iterations, cpu = run_arm(preset, COMMON + extra + overrides)
            row.update({f"{arm}_ap50": ap, f"{arm}_seconds": seconds, "target_iterations": iterations})
            row["cpu_seconds"] += cpu
        rows.append(row)
        print(json.dumps(row), flush=True)
    (out / "transfer.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print("\n| detector | source AP50 (0-4) | fine-tuned AP50 (5-9) | from scratch AP50 (5-9) | iterations | "
          "wall s: source / fine-tune / scratch | CPU min |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['family']} ({r['preset']}) | {r['source_ap50_0to4']:.3f} | {r['finetune_ap50']:.3f} | "
              f"{r['scratch_ap50']:.3f} | {r['target_iterations']} | {r['source_seconds']:.0f} / "
              f"{r['finetune_seconds']:.0f} / {r['scratch_seconds']:.0f} | {r['cpu_seconds'] / 60:.1f} |")


if __name__ == "__main__":
    main()
