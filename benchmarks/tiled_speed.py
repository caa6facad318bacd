"""Tiled prediction speed (issue 25, item 8): anchordet's batched tiles, the same tiles one at a
time, and SAHI 0.12 (``pip install .[bench]``) wrapping the same weights in torchvision.

    OMP_NUM_THREADS=1 python benchmarks/tiled_speed.py [--side 4096] [--tile 512] [--overlap 0.2]
        [--batch-size 8] [--rounds 2] [--workdir DIR]
        [--methods anchordet_batched,anchordet_batched_bf16,anchordet_one_at_a_time,sahi]

The weights: a torchvision ``retinanet_resnet50_fpn`` (11 logits, seeded random init, its
classification bias raised so that every tile yields detections: no trained weights can be
downloaded here), written as a state dict and converted with ``anchordet convert --arch
retinanet_resnet50_fpn``. SAHI wraps the torchvision model, anchordet loads the converted file;
both resize a tile to 512 (torchvision's ``min_size``/``max_size``, anchordet's ``--min-size``)
and merge by greedy NMM on IoS 0.5, class-aware (SAHI's defaults; anchordet ``--tile-merge nmm``),
keeping detections that score above 0.3 (``SCORE_THRESH``).

Each method runs in its own process (one torch thread), rounds interleaved; the figures are the
median seconds per image, tiles/s, images/s and the process's peak RSS (``ru_maxrss``). The
agreement line compares anchordet's merged boxes with SAHI's (same label, IoU >= 0.9).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# both keep detections scoring above this (SAHI 0.12 switches its merge to NMS by IoU below 0.1)
SCORE_THRESH = 0.3


def make_weights(work: Path) -> tuple[Path, Path]:
    import torch
    from torchvision.models.detection import retinanet_resnet50_fpn

    torch.manual_seed(0)
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=11)
    with torch.no_grad():
        model.head.classification_head.cls_logits.bias.normal_(-2.0, 1.0)
    tv = work / "tv.pth"
    torch.save(model.state_dict(), tv)
    ours = work / "ours.safetensors"
    subprocess.run([sys.executable, "-m", "anchordet.cli.main", "convert", str(tv), "--arch", "retinanet_resnet50_fpn",
                    "--out", str(ours)], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return tv, ours


def make_image(work: Path, side: int) -> Path:
    import numpy as np

    path = work / f"image_{side}.npy"
    if not path.is_file():
        rng = np.random.default_rng(0)
        # smooth blobs over noise: something for a random network to respond to
        image = (rng.random((side // 32, side // 32, 3)) * 255).astype(np.uint8).repeat(32, 0).repeat(32, 1)
        image = (image * 0.7 + rng.integers(0, 77, (side, side, 3))).astype(np.uint8)
        np.save(path, image)
    return path


def worker(method: str, args: argparse.Namespace) -> dict:
    """One timed run in this process: seconds, tiles, detections, peak RSS."""
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(1)
    image = np.load(args.image)
    tiles = len(__import__("anchordet.tiling", fromlist=["tile_windows"]).tile_windows(
        image.shape[0], image.shape[1], args.tile, args.overlap))
    if method == "sahi":
        from sahi import AutoDetectionModel
        from sahi.predict import get_sliced_prediction
        from torchvision.models.detection import retinanet_resnet50_fpn

        tv = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=11, min_size=args.tile,
                                    max_size=args.tile)
        tv.load_state_dict(torch.load(args.tv, weights_only=True))
        model = AutoDetectionModel.from_pretrained(model_type="torchvision", model=tv.eval(), confidence_threshold=SCORE_THRESH,
                                                   device="cpu", category_mapping={str(i): str(i) for i in range(11)},
                                                   load_at_init=True)
        start = time.perf_counter()
        result = get_sliced_prediction(image, model, slice_height=args.tile, slice_width=args.tile,
                                       overlap_height_ratio=args.overlap, overlap_width_ratio=args.overlap,
                                       perform_standard_pred=False, postprocess_type="GREEDYNMM",
                                       postprocess_match_metric="IOS", postprocess_match_threshold=0.5,
                                       postprocess_class_agnostic=False, verbose=0)
        seconds = time.perf_counter() - start
        boxes = [[*map(float, p.bbox.to_xyxy()), int(p.category.id), float(p.score.value)]
                 for p in result.object_prediction_list]
    else:
        import anchordet

        # "..._bf16": the network under bf16 autocast (native on CPUs with avx512_bf16 / amx_bf16)
        precision = "bf16" if method.endswith("_bf16") else "fp32"
        predictor = anchordet.load(args.ours, "cpu", min_size=args.tile, max_size=args.tile, precision=precision)
        tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        start = time.perf_counter()
        [p] = predictor.predict(tensor, score_thresh=SCORE_THRESH, tile=args.tile, tile_overlap=args.overlap, tile_merge="nmm",
                                batch_size=args.batch_size if method.startswith("anchordet_batched") else 1)
        seconds = time.perf_counter() - start
        labels = [predictor.category_ids[int(label)] for label in p.labels]
        boxes = [[*b, c, s] for b, c, s in zip(p.boxes.tolist(), labels, p.scores.tolist())]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "seconds": seconds, "tiles": tiles, "detections": boxes, "peak_mb": peak_mb}


def agreement(a: list, b: list) -> float:
    """Share of ``a``'s boxes with a box of ``b`` of the same label at IoU >= 0.9."""
    import torch
    from torchvision.ops import box_iou

    if not a or not b:
        return float(len(a) == len(b))
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    iou = box_iou(ta[:, :4], tb[:, :4])
    same = ta[:, 4:5] == tb[None, :, 4]
    return float(((iou >= 0.9) & same).any(dim=1).double().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--methods", default="anchordet_batched,anchordet_one_at_a_time,sahi")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--tv", help=argparse.SUPPRESS)
    parser.add_argument("--ours", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tiled_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    tv, ours = make_weights(work)
    image = make_image(work, args.side)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs: dict[str, list[dict]] = {}
    for round_index in range(args.rounds):
        for method in args.methods.split(","):
            out = subprocess.run([sys.executable, __file__, "--worker", method, "--image", str(image), "--tv", str(tv),
                                  "--ours", str(ours), "--tile", str(args.tile), "--overlap", str(args.overlap),
                                  "--batch-size", str(args.batch_size)], check=True, capture_output=True, text=True,
                                 env=env, cwd=REPO)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs.setdefault(method, []).append(result)
            print(f"round {round_index}: {method} {result['seconds']:.1f} s, {len(result['detections'])} detections, "
                  f"peak {result['peak_mb']:.0f} MB; load {open('/proc/loadavg').read().split()[0]}", flush=True)
    print(f"{args.side} x {args.side} image, {runs[next(iter(runs))][0]['tiles']} tiles of {args.tile} "
          f"(overlap {args.overlap}), batch {args.batch_size}, 1 thread per process")
    medians = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items()}
    for method, rs in runs.items():
        tiles = rs[0]["tiles"]
        print(f"  {method:<24} {medians[method]:8.1f} s/image  {tiles / medians[method]:6.2f} tiles/s  "
              f"{1 / medians[method]:.4f} images/s  peak RSS {max(r['peak_mb'] for r in rs):.0f} MB")
    if "sahi" in medians:
        for method in medians:
            if method != "sahi":
                print(f"  {method} / sahi images/s: {medians['sahi'] / medians[method]:.2f}x")
        if "anchordet_batched" in runs:
            a, s = runs["anchordet_batched"][0]["detections"], runs["sahi"][0]["detections"]
            print(f"  agreement: {len(a)} anchordet boxes, {len(s)} SAHI boxes; {agreement(a, s):.3f} of anchordet's "
                  f"have a SAHI box of the same label at IoU >= 0.9, {agreement(s, a):.3f} the other way")


if __name__ == "__main__":
    main()
