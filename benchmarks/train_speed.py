"""Training iterations per second of the digits presets in each set-up, through the real
`anchordet train` (data generation, optimizer, logging included): what sizes the presets' epochs.

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py [--presets retinanet_digits ssd_digits
        faster_rcnn_digits] [--setups fp32 fp32+cl bf16+cl] [--iters 60] [--threads 1] [--concurrent]

Each (preset, set-up) trains ``--iters`` iterations from the same seed (``run.stop_after_iters``)
into a temporary folder; the figure is the seconds per iteration over the iterations after the
first ``--skip`` (start-up and allocator warm-up excluded), from the ``images_per_s`` the trainer
logs. Set-ups: fp32 (NCHW: how the presets trained before issue 21), fp32+cl (channels_last),
bf16+cl (bf16 autocast around the network + channels_last). Sequential by default (an idle
machine); ``--concurrent`` starts a preset's set-ups at once, so that a busy machine's load hits
them alike (each still gets one thread: on a 2-core machine three of them compete).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SETUPS = {"fp32": ("fp32", "false"), "fp32+cl": ("fp32", "true"), "bf16+cl": ("bf16", "true")}


def command(preset: str, setup: str, out: Path, iters: int, threads: int) -> list[str]:
    precision, channels_last = SETUPS[setup]
    sets = [f"run.out_dir={out}", f"run.stop_after_iters={iters}", "run.eval_every=0", "run.log_every=1",
            f"run.threads={threads}", f"run.channels_last={channels_last}", f"run.precision={precision}"]
    return [sys.executable, "-m", "anchordet.cli.main", "train", "--no-progress", "-c", preset,
            *[arg for item in sets for arg in ("--set", item)]]


def seconds_per_iter(metrics: Path, skip: int, batch: int) -> float:
    """Mean seconds per iteration after iteration ``skip``, from the logged window speeds."""
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    # images_per_s is the running average since the epoch started: turn it into elapsed times
    elapsed = {r["iteration"]: r["iteration"] * batch / r["images_per_s"] for r in train if r["epoch"] == 1}
    last = max(elapsed)
    return (elapsed[last] - elapsed[skip]) / (last - skip)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["retinanet_digits", "ssd_digits", "faster_rcnn_digits"])
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS))
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--skip", type=int, default=10, help="iterations left out of the timing (start-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--concurrent", action="store_true", help="a preset's set-ups at the same time")
    args = parser.parse_args(argv)
    from anchordet.config.load import load_config

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            batch = load_config(preset).solver.batch_size
            runs = {setup: Path(tmp) / f"{preset}_{setup}" for setup in args.setups}
            commands = [command(preset, setup, out, args.iters, args.threads) for setup, out in runs.items()]
            if args.concurrent:
                for process in [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL) for c in commands]:
                    if process.wait():
                        raise SystemExit(f"training failed: {preset}")
            else:
                for c in commands:
                    subprocess.run(c, env=env, stdout=subprocess.DEVNULL, check=True)
            times = {setup: seconds_per_iter(out / "metrics.jsonl", args.skip, batch) for setup, out in runs.items()}
            base = times.get("fp32")
            for setup, seconds in times.items():
                rows.append({"preset": preset, "setup": setup, "batch": batch, "s_per_iter": seconds,
                             "speedup_vs_fp32": base / seconds if base else None})
                print(json.dumps(rows[-1]), flush=True)
    print("\n| preset (batch) | set-up | s / iteration | speed-up vs fp32 |\n| --- | --- | ---: | ---: |")
    for r in rows:
        speedup = f"{r['speedup_vs_fp32']:.2f}x" if r["speedup_vs_fp32"] else "-"
        print(f"| {r['preset']} ({r['batch']}) | {r['setup']} | {r['s_per_iter']:.3f} | {speedup} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
