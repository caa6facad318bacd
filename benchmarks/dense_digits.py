"""Dense scenes: a model trained on the 128 px digits scenes, applied tiled to 1024 px scenes
holding 150-200 digits (issue 25, item 7), and the AP effect of the detections-per-image cap.

    OMP_NUM_THREADS=1 python benchmarks/dense_digits.py --weights runs/retinanet_digits_fast/model.safetensors
        [--scenes 10] [--val-images 300] [--tile 128] [--overlap 0.2] [--workdir DIR]

Prints, for the same weights:
- its own AP50 on ``--val-images`` 128 px test scenes (as ``anchordet evaluate`` gives it), with
  the model keeping 100 and 300 detections per image (the AP effect of the default cap);
- AP50 on ``--scenes`` 1024 px test scenes (150-200 digits each, digits of the same 20-56 px,
  written by ``anchordet data digits --canvas-size 1024 --digits-per-image 150 200``) untiled
  (the whole scene resized to the model's 128 px: digits become 2-7 px) and tiled (``--tile``
  windows, NMS by IoS and greedy NMM), counting 300 detections per image (``--max-dets 300``);
- precision / recall / F1 at IoU 0.4, best-F1 threshold, for the tiled runs.
The goal: tiled AP50 >= own 128 px AP50 - 0.03. Accuracy figures are deterministic (fixed seeds).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import tempfile
import time
from pathlib import Path


def run_cli(argv: list[str]) -> str:
    from anchordet.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"anchordet {' '.join(argv)} failed ({code}):\n{out.getvalue()}")
    return out.getvalue()


def own_ap50(weights: str, val_images: int, max_detections: int) -> float:
    """AP50 on the 128 px test scenes with the model keeping ``max_detections`` per image."""
    from anchordet.cli.evaluate import _dataset
    from anchordet.engine.evaluate import evaluate_dataset
    from anchordet.predictor import load

    predictor = load(weights, "cpu")
    post = predictor.model.postprocess
    predictor.model.postprocess = dataclasses.replace(post, max_detections=max_detections)
    args = argparse.Namespace(data="digits", digits_val_images=val_images, split="val")
    dataset = _dataset(args, predictor.settings, predictor.transform)
    result = evaluate_dataset(predictor.model, dataset, "coco", predictor.device, batch_size=16)
    return float(result.metrics.stats["AP50"])


def dense(weights: str, data: Path, out: Path, extra: list[str]) -> dict:
    start = time.perf_counter()
    run_cli(["evaluate", "-w", weights, "--data", str(data / "data.yaml"), "--out", str(out), "--device", "cpu",
             "--max-dets", "300", "--iou", "0.4", *extra])
    seconds = time.perf_counter() - start
    stats = json.loads((out / "metrics.json").read_text())["stats"]
    prf = json.loads((out / "prf.json").read_text())["overall"]
    return {"AP50": stats["AP50"], "AP": stats["AP"], "AR300": stats["AR300"], "f1@0.4": prf["f1"],
            "precision@0.4": prf["precision"], "recall@0.4": prf["recall"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--val-images", type=int, default=300)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=float, default=0.2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dense_digits_"))
    data = work / "dense"
    if not (data / "data.yaml").is_file():
        run_cli(["data", "digits", "--out", str(data), "--num-train", "1", "--num-val", str(args.scenes),
                 "--canvas-size", "1024", "--digits-per-image", "150", "200"])
    rows = {}
    for cap in (100, 300):
        rows[f"own 128 px scenes, model keeps {cap}"] = {"AP50": own_ap50(args.weights, args.val_images, cap)}
    rows["1024 px, untiled"] = dense(args.weights, data, work / "untiled", [])
    tile = ["--tile", str(args.tile), "--tile-overlap", str(args.overlap), "--batch-size", "16"]
    rows[f"1024 px, tiled {args.tile} nms/ios"] = dense(args.weights, data, work / "tiled_nms", tile)
    rows[f"1024 px, tiled {args.tile} nmm/ios"] = dense(args.weights, data, work / "tiled_nmm", tile + ["--tile-merge", "nmm"])
    own = rows["own 128 px scenes, model keeps 300"]["AP50"]
    print(f"weights {args.weights}; {args.scenes} scenes of 1024 px (150-200 digits), {args.val_images} of 128 px; "
          f"load {os.getloadavg()[0]:.1f}")
    for name, row in rows.items():
        print(f"  {name:<40} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    for name, row in rows.items():
        if "tiled" in name and "untiled" not in name:
            print(f"  {name}: AP50 {row['AP50']:.3f} vs own {own:.3f} - 0.03 = {own - 0.03:.3f}: "
                  f"{'met' if row['AP50'] >= own - 0.03 else 'NOT met'}")


if __name__ == "__main__":
    main()
