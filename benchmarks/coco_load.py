"""Opening a COCO annotation file: anchordet against pycocotools, in one run on the same file.

    python benchmarks/coco_load.py [--images 60000] [--objects 7] [--repeat 3] [--seed 0]

The file is COCO-shaped (written once with ``json.dump``): ``--images`` images of 640 x 480,
about ``--objects`` annotations each (1-13) with a 16-point polygon, 80 categories, 1% crowd.
COCO train2017 is 118k images, 860k annotations, 448 MB.

Rows (the median of ``--repeat`` runs, each in this process, the file already in the page cache):
- ``json.load``: the standard library, as pycocotools and torchvision's ``CocoDetection`` read it;
- ``anchordet.files.load_json``: orjson with the garbage collector paused (stdlib fallback);
- ``pycocotools COCO(file)``: read + index (``CocoDetection.__init__`` does just this);
- ``anchordet read_coco_records``: read + validate every entry + records per image;
- ``torchvision CocoDetection(root, file)`` and ``anchordet CocoDataset(root, file)``: the
  dataset objects users build (anchordet's also checks that every image file exists and every box
  is finite, inside its image and of a known category; the images are empty files here, opened
  by neither at construction).
Also checks that both readers give equal dicts.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def coco_like(images: int, objects: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    anns, ann_id = [], 1
    for image_id in range(1, images + 1):
        for _ in range(int(rng.integers(1, 2 * objects))):
            x, y = rng.uniform(0, 560), rng.uniform(0, 400)
            w, h = rng.uniform(2, 640 - x), rng.uniform(2, 480 - y)
            polygon = np.column_stack([rng.uniform(x, x + w, 8), rng.uniform(y, y + h, 8)]).ravel()
            anns.append({"id": ann_id, "image_id": image_id, "category_id": int(rng.integers(1, 81)),
                         "bbox": [round(v, 2) for v in (x, y, w, h)], "area": round(w * h * 0.6, 2),
                         "iscrowd": int(rng.random() < 0.01), "segmentation": [np.round(polygon, 2).tolist()]})
            ann_id += 1
    return {"images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480}
                       for i in range(1, images + 1)],
            "annotations": anns, "categories": [{"id": k, "name": f"class{k}"} for k in range(1, 81)]}


def median_seconds(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=60000)
    parser.add_argument("--objects", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from pycocotools.coco import COCO
    from torchvision.datasets import CocoDetection

    from anchordet.data import CocoDataset
    from anchordet.data.coco import read_coco_records
    from anchordet.files import load_json

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "instances.json"
        data = coco_like(args.images, args.objects, args.seed)
        with open(path, "w") as f:
            json.dump(data, f)
        print(f"{path.stat().st_size / 1e6:.0f} MB, {len(data['images'])} images, "
              f"{len(data['annotations'])} annotations")
        images_dir = Path(folder) / "images"
        images_dir.mkdir()
        for image in data["images"]:
            (images_dir / image["file_name"]).touch()
        del data
        if load_json(path) != json.load(open(path, encoding="utf-8")):
            print("the two readers differ")
            return 1

        def quiet(make, *args):
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
                return make(*args)

        def pycocotools_index():
            return quiet(COCO, str(path))

        rows = [("json.load", lambda: json.load(open(path, encoding="utf-8"))),
                ("anchordet.files.load_json", lambda: load_json(path)),
                ("pycocotools COCO(file)", pycocotools_index),
                ("anchordet read_coco_records", lambda: read_coco_records(path, images_dir)),
                ("torchvision CocoDetection", lambda: quiet(CocoDetection, str(images_dir), str(path))),
                ("anchordet CocoDataset", lambda: CocoDataset(images_dir, path))]
        seconds = {name: median_seconds(run, args.repeat) for name, run in rows}
    for name, s in seconds.items():
        print(f"{name:30s} {s:7.2f} s")
    print(f"time ratios: CocoDataset / CocoDetection "
          f"{seconds['anchordet CocoDataset'] / seconds['torchvision CocoDetection']:.2f}, "
          f"read_coco_records / COCO(file) "
          f"{seconds['anchordet read_coco_records'] / seconds['pycocotools COCO(file)']:.2f}, "
          f"load_json / json.load {seconds['anchordet.files.load_json'] / seconds['json.load']:.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
