"""Tiled prediction on a TIFF far above the untiled pixel limit: time and peak memory (issue 25, item 2).

    OMP_NUM_THREADS=1 python benchmarks/large_tiff.py [--side 20000] [--tile 512] [--batch-size 8] [--workdir DIR]

Writes a ``--side`` x ``--side`` RGB TIFF (256 px zlib tiles, written tile by tile: smooth noise)
unless it exists, then predicts on it with ``tile=--tile`` using a small randomly initialised
RetinaNet (ResNet-18 at quarter width, each window resized to 512: the network's cost per tile is
not the point here, the reading and merging are). Prints the tiles, seconds, detections and the
process's peak RSS (``ru_maxrss``), beside what the whole image would take decoded (uint8 and
float32): the windowed read keeps memory to the batch of windows, not the image.
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def write_tiff(path: Path, side: int, tile: int = 256) -> None:
    import tifffile

    rng = np.random.default_rng(0)

    def tiles():
        for _ in range((-(-side // tile)) ** 2):
            coarse = rng.integers(0, 255, (tile // 32, tile // 32, 3), dtype=np.uint8)
            yield coarse.repeat(32, 0).repeat(32, 1)

    tifffile.imwrite(path, tiles(), shape=(side, side, 3), dtype="uint8", tile=(tile, tile), photometric="rgb",
                     compression="zlib")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=20000)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    import torch

    import anchordet
    from anchordet.config.inference import InferenceSettings
    from anchordet.config.schema import ModelConfig
    from anchordet.tiling import tile_windows
    from anchordet.weights_file import save_weights

    torch.set_num_threads(1)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="large_tiff_"))
    work.mkdir(parents=True, exist_ok=True)
    tiff = work / f"big_{args.side}.tif"
    if not tiff.is_file():
        start = time.perf_counter()
        write_tiff(tiff, args.side)
        print(f"wrote {tiff} ({tiff.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s", flush=True)
    config = ModelConfig("retinanet_resnet_fpn", dict(depth=18, num_classes=3, backbone_width=16, fpn_channels=32,
                                                      head_channels=32, head_num_convs=1, frozen_bn=False))
    torch.manual_seed(0)
    settings = InferenceSettings("resize", 512, 512, class_names=["a", "b", "c"], category_ids=[1, 2, 3])
    save_weights(work / "w.safetensors", config.build().eval(), config, settings.to_metadata())
    predictor = anchordet.load(work / "w.safetensors", "cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    [p] = predictor.predict(tiff, tile=args.tile, batch_size=args.batch_size, score_thresh=0.05)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiles = len(tile_windows(args.side, args.side, args.tile, 0.2))
    whole = args.side * args.side * 3
    print(json.dumps({"side": args.side, "tile": args.tile, "batch_size": args.batch_size, "tiles": tiles,
                      "seconds": round(seconds, 1), "tiles_per_s": round(tiles / seconds, 2), "detections": len(p),
                      "peak_rss_mb_before_predict": round(before), "peak_rss_mb": round(peak),
                      "whole_image_uint8_mb": round(whole / 2 ** 20), "whole_image_float32_mb": round(whole * 4 / 2 ** 20),
                      "load": open("/proc/loadavg").read().split()[0]}))


if __name__ == "__main__":
    main()
