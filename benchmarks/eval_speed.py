"""COCO evaluation speed: anchordet against pycocotools, faster-coco-eval and torchmetrics, in one
run on the same files, in-process and as whole processes; the 12 statistics must agree.

    OMP_NUM_THREADS=1 python benchmarks/eval_speed.py [--images 5000] [--categories 80] [--dets 100]
        [--seed 0] [--repeat 3] [--skip pycocotools,torchmetrics] [--workdir DIR]

Ground truth: 1-14 objects per image of all sizes, 1% crowd regions; detections: 100 per image,
jittered copies of the gts (mostly the right category) plus random boxes, scores rounded to 3
decimals (so ties occur). Both are written as JSON files first (full float precision, as
``json.dump`` writes them); every tool then starts from those files.

In-process (one Python process, imports already done): "load" = parse both files and index them
(pycocotools / faster-coco-eval: ``COCO(gt)`` + ``loadRes``; anchordet: ``load_json`` +
``CocoEvaluator`` + ``add_results``; torchmetrics: the files into per-image tensors + ``update``),
"evaluate" = ``evaluate + accumulate + summarize`` (anchordet: ``summarize``; torchmetrics:
``compute``, on its faster_coco_eval backend). Whole process: a fresh interpreter from start to
exit, ``anchordet score GT RESULTS --json`` (and with ``--analyze``) and, for the peers, the
shortest script that prints their 12 numbers from the same files (torchmetrics: the in-process
code above in a fresh interpreter); the median of ``--repeat`` runs.
Also ``anchordet --help`` and ``anchordet score --help``. Exit status 1 if any tool's statistics
differ from pycocotools' by more than 1e-9 (torchmetrics' difference is printed, not fatal: its
IoU and recall thresholds come from ``torch.linspace`` in float32, 0.55 becoming 0.550000011920929).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def synthetic_case(num_images: int, num_cats: int, dets_per_image: int, seed: int):
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "width": 640, "height": 480} for i in range(num_images)]
    cats = [{"id": c + 1, "name": f"class{c + 1}"} for c in range(num_cats)]
    anns, results = [], []
    for im in images:
        n_gt = int(rng.integers(1, 15))
        sizes = np.exp(rng.uniform(np.log(8), np.log(300), (n_gt, 2)))
        xy = rng.uniform(0, 1, (n_gt, 2)) * (np.array([640, 480]) - sizes).clip(1)
        gt_cats = rng.integers(1, num_cats + 1, n_gt)
        for b, c in zip(np.concatenate([xy, sizes], 1), gt_cats):
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": int(c),
                         "bbox": b.tolist(), "area": float(b[2] * b[3]), "iscrowd": int(rng.random() < 0.01)})
        near = min(dets_per_image, 3 * n_gt)
        src = rng.integers(0, n_gt, near)
        base = np.concatenate([xy, sizes], 1)[src]
        jit = base + rng.normal(0, 0.1, (near, 4)) * base[:, [2, 3, 2, 3]]
        cats_near = np.where(rng.random(near) < 0.9, gt_cats[src], rng.integers(1, num_cats + 1, near))
        far = dets_per_image - near
        rand_wh = np.exp(rng.uniform(np.log(8), np.log(300), (far, 2)))
        rand = np.concatenate([rng.uniform(0, 1, (far, 2)) * (np.array([640, 480]) - rand_wh).clip(1), rand_wh], 1)
        boxes = np.concatenate([jit, rand])
        boxes[:, 2:] = np.abs(boxes[:, 2:])
        cats_all = np.concatenate([cats_near, rng.integers(1, num_cats + 1, far)])
        scores = np.round(np.concatenate([rng.uniform(0.3, 1, near), rng.uniform(0, 0.7, far)]), 3)
        results += [{"image_id": im["id"], "category_id": int(c), "bbox": b, "score": s}
                    for b, c, s in zip(boxes.tolist(), cats_all.tolist(), scores.tolist())]
    return {"images": images, "annotations": anns, "categories": cats}, results


# ---- in-process runs: each returns (12 stats, load seconds, evaluate seconds) ----

def _cocoapi(module_coco, module_eval, gt_path, res_path):
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        coco_gt = module_coco(str(gt_path))
        coco_dt = coco_gt.loadRes(str(res_path))
        t1 = time.perf_counter()
        ev = module_eval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return np.array(ev.stats[:12], np.float64), t1 - t0, t2 - t1


def run_pycocotools(gt_path, res_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return _cocoapi(COCO, COCOeval, gt_path, res_path)


def run_faster_coco_eval(gt_path, res_path):
    from faster_coco_eval import COCO, COCOeval_faster

    return _cocoapi(COCO, COCOeval_faster, gt_path, res_path)


def run_anchordet(gt_path, res_path):
    from anchordet.evaluation import CocoEvaluator
    from anchordet.files import load_json

    t0 = time.perf_counter()
    ev = CocoEvaluator(load_json(gt_path))
    ev.add_results(load_json(res_path))
    t1 = time.perf_counter()
    m = ev.summarize()
    t2 = time.perf_counter()
    return np.array([m.stats[k] for k in STAT_KEYS]), t1 - t0, t2 - t1


def run_torchmetrics(gt_path, res_path):
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    t0 = time.perf_counter()
    gt = json.loads(Path(gt_path).read_text())
    res = json.loads(Path(res_path).read_text())
    ids = sorted(im["id"] for im in gt["images"])
    targets = {i: ([], [], [], []) for i in ids}
    for a in gt["annotations"]:
        t = targets[a["image_id"]]
        t[0].append(a["bbox"]), t[1].append(a["category_id"]), t[2].append(a["iscrowd"]), t[3].append(a["area"])
    preds = {i: ([], [], []) for i in ids}
    for r in res:
        p = preds[r["image_id"]]
        p[0].append(r["bbox"]), p[1].append(r["score"]), p[2].append(r["category_id"])
    metric = MeanAveragePrecision(box_format="xywh", backend="faster_coco_eval")
    box = lambda b: torch.tensor(b, dtype=torch.float64).reshape(-1, 4)  # noqa: E731
    metric.update([{"boxes": box(preds[i][0]), "scores": torch.tensor(preds[i][1], dtype=torch.float64),
                    "labels": torch.tensor(preds[i][2])} for i in ids],
                  [{"boxes": box(targets[i][0]), "labels": torch.tensor(targets[i][1]),
                    "iscrowd": torch.tensor(targets[i][2]), "area": torch.tensor(targets[i][3], dtype=torch.float64)}
                   for i in ids])
    t1 = time.perf_counter()
    out = metric.compute()
    t2 = time.perf_counter()
    keys = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100",
            "mar_small", "mar_medium", "mar_large")
    return np.array([float(out[k]) for k in keys]), t1 - t0, t2 - t1


# ---- whole processes ----

_PEER_SCRIPT = """
import contextlib, io, json, sys
from {coco} import COCO
from {cocoeval} import {cls} as E
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1]); ev = E(gt, gt.loadRes(sys.argv[2]), "bbox")
    ev.evaluate(); ev.accumulate(); ev.summarize()
print(json.dumps(list(map(float, ev.stats[:12]))))
"""
_TORCHMETRICS_SCRIPT = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from eval_speed import run_torchmetrics
print(json.dumps(run_torchmetrics(sys.argv[1], sys.argv[2])[0].tolist()))
"""
WHOLE = {
    "anchordet score": lambda g, r: [sys.executable, "-m", "anchordet.cli.main", "score", g, r, "--json"],
    "anchordet score --analyze": lambda g, r: [sys.executable, "-m", "anchordet.cli.main", "score", g, r, "--json",
                                               "--analyze"],
    "pycocotools": lambda g, r: [sys.executable, "-c", _PEER_SCRIPT.format(
        coco="pycocotools.coco", cocoeval="pycocotools.cocoeval", cls="COCOeval"), g, r],
    "faster-coco-eval": lambda g, r: [sys.executable, "-c", _PEER_SCRIPT.format(
        coco="faster_coco_eval", cocoeval="faster_coco_eval", cls="COCOeval_faster"), g, r],
    "torchmetrics": lambda g, r: [sys.executable, "-c", _TORCHMETRICS_SCRIPT, g, r],
    "anchordet --help": lambda g, r: [sys.executable, "-m", "anchordet.cli.main", "--help"],
    "anchordet score --help": lambda g, r: [sys.executable, "-m", "anchordet.cli.main", "score", "--help"],
}


def time_process(argv: list[str], repeat: int) -> tuple[float, str]:
    """Median wall seconds of ``repeat`` runs, and the last run's stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    times, out = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])} failed: {proc.stderr[-2000:]}")
        out = proc.stdout
    return statistics.median(times), out


def _stats_of(name: str, stdout: str) -> np.ndarray | None:
    if "help" in name:
        return None
    got = json.loads(stdout.splitlines()[0])
    return np.array([got[k] for k in STAT_KEYS] if isinstance(got, dict) else got, np.float64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--categories", type=int, default=80)
    parser.add_argument("--dets", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="whole-process runs per command (median)")
    parser.add_argument("--skip", default="", help="comma-separated tools to leave out: pycocotools, "
                                                    "faster-coco-eval, torchmetrics, whole")
    parser.add_argument("--workdir", type=Path, help="where the JSON files go (default: a temporary folder)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        gt, results = synthetic_case(args.images, args.categories, args.dets, args.seed)
        gt_path, res_path = work / "gt.json", work / "results.json"
        gt_path.write_text(json.dumps(gt))
        res_path.write_text(json.dumps(results))
        print(f"{args.images} images, {args.categories} categories, {len(gt['annotations'])} gt boxes, "
              f"{len(results)} detections; results file {res_path.stat().st_size / 1e6:.1f} MB; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        del gt, results
        return _report(gt_path, res_path, args.repeat, skip)


def _report(gt_path: Path, res_path: Path, repeat: int, skip: set[str]) -> int:
    runners = {"anchordet": run_anchordet, "pycocotools": run_pycocotools,
               "faster-coco-eval": run_faster_coco_eval, "torchmetrics": run_torchmetrics}
    inproc, stats = {}, {}
    for name, run in runners.items():
        if name in skip:
            continue
        try:
            s, load, ev = run(gt_path, res_path)
        except ImportError as exc:
            print(f"{name}: not installed ({exc}); skipped")
            skip.add(name)
            continue
        inproc[name], stats[f"{name} (in-process)"] = (load, ev), s
    whole = {}
    if "whole" not in skip:
        for name, argv in WHOLE.items():
            if any(name.startswith(s) for s in skip):
                continue
            seconds, out = time_process(argv(str(gt_path), str(res_path)), repeat)
            whole[name] = seconds
            if (s := _stats_of(name, out)) is not None:
                stats[f"{name} (process)"] = s
    print(f"\nin-process{'':15s}{'load s':>9s}{'evaluate s':>12s}{'total s':>9s}")
    for name, (load, ev) in inproc.items():
        print(f"  {name:23s}{load:9.2f}{ev:12.2f}{load + ev:9.2f}")
    print(f"\nwhole process, median of {repeat}{'':4s}{'wall s':>9s}")
    for name, seconds in whole.items():
        print(f"  {name:32s}{seconds:9.2f}")
    return _check(stats, inproc, whole)


def _check(stats, inproc, whole) -> int:
    print("\ngoals (issue 17):")
    ours = whole.get("anchordet score")
    if ours and "pycocotools" in inproc:
        load, ev = inproc["pycocotools"]
        print(f"  anchordet score (process) vs pycocotools in-process: {(load + ev) / ours:.1f}x its total, "
              f"{ev / ours:.1f}x its evaluate alone (goal >= 10x)")
    if ours and "faster-coco-eval" in inproc:
        load, ev = inproc["faster-coco-eval"]
        print(f"  anchordet score (process) vs faster-coco-eval in-process: {(load + ev) / ours:.2f}x its total, "
              f"{ev / ours:.2f}x its evaluate alone (goal > 1x)")
    for name in ("anchordet --help", "anchordet score --help"):
        if name in whole:
            print(f"  {name}: {whole[name]:.2f} s (goal < 0.5 s)")
    if ours and "anchordet score --analyze" in whole:
        print(f"  --analyze / plain score: {whole['anchordet score --analyze'] / ours:.2f}x (goal < 3x)")
    reference = stats.get("pycocotools (in-process)")
    if reference is None:
        print("no pycocotools run: statistics not compared")
        return 0
    print(f"\nstats (AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs ARm ARl): {np.round(reference, 4).tolist()}")
    failed = False
    for name, s in stats.items():
        diff = float(np.max(np.abs(s - reference)))
        fatal = diff > 1e-9 and not name.startswith("torchmetrics")
        failed |= fatal
        print(f"  max |{name} - pycocotools| = {diff:.1e}" + (" MISMATCH" if diff > 1e-9 else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
