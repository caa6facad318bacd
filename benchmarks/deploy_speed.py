"""Speed of the deployment backends against torchvision fp32, in one interleaved run (issue 27).

    OMP_NUM_THREADS=1 python benchmarks/deploy_speed.py --weights r50.safetensors \
        --torchvision tv_r50.pth --compare r50.onnx r50_int8.onnx r50.xml r50_int8.xml \
        --size 800 800 --batch-sizes 1 2 --repeats 3 --threads 1 [--json out.json]

Rows: torchvision's ``retinanet_resnet50_fpn`` fp32 with the state dict the anchordet weights were
converted from (``--torchvision``; its internal resize set to the input size, so it runs the same
pixels), anchordet eager fp32 / bf16 (``anchordet.load``'s set-up: BN folded, channels_last where
measured faster), and each exported file through its backend (OpenVINO once in fp32 and once in
bf16 as its inference precision). Every row times one ``predict`` of an already resized batch
(network and post-processing), A, B, C, A, B, C, ... after one warm-up call each
(``anchordet.runtime.backend_benchmark``). All runtimes get ``--threads`` threads (torch
``set_num_threads``, onnxruntime ``intra_op_num_threads``, OpenVINO ``INFERENCE_NUM_THREADS``).
Without ``--torchvision`` the reference is anchordet's eager fp32 row.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys

import torch


class TorchvisionRetinaNet:
    """torchvision's RetinaNet-R50-FPN as a backend row: ``predict`` = ``model(list of images)``."""

    name, precision = "torchvision", "fp32"

    def __init__(self, state_path: str, size: tuple[int, int]):
        from torchvision.models.detection import retinanet_resnet50_fpn

        self.model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, min_size=min(size),
                                            max_size=max(size))
        self.model.load_state_dict(torch.load(state_path, weights_only=True))
        self.model.eval()

    def predict(self, images):
        return self.model(list(images))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--torchvision", help="the torchvision state dict the weights were converted from")
    parser.add_argument("--compare", nargs="*", default=[])
    parser.add_argument("--size", nargs=2, type=int, required=True)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    from anchordet.backends import TorchBackend, open_exported
    from anchordet.runtime import backend_benchmark as BB
    from anchordet.runtime.acceleration import accelerate_for_inference
    from anchordet.runtime.benchmark import machine_info
    from anchordet.weights_file import load_detector

    size = tuple(args.size)
    rows_of = []
    if args.torchvision:
        rows_of.append(("torchvision fp32", TorchvisionRetinaNet(args.torchvision, size)))
    model, _ = load_detector(args.weights)
    for precision in args.precisions:
        runner = accelerate_for_inference(copy.deepcopy(model), torch.device("cpu"), precision)
        rows_of.append((f"anchordet torch {precision}", TorchBackend(runner, "cpu", precision)))
    for path in args.compare:
        for precision in (args.precisions if path.endswith(".xml") else ["fp32"]):
            backend = open_exported(path, precision=precision, threads=args.threads)
            rows_of.append((f"{backend.name} {backend.precision} ({os.path.basename(path)})", backend))
    info = machine_info(torch.device("cpu"))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"{args.weights}: input {size[0]}x{size[1]}; CPU {info['cpu']} [{' '.join(info['cpu_flags'])}]; "
          f"{args.threads} thread(s) per runtime; load average before {' '.join(load)}", flush=True)
    rows = BB.benchmark_backends(rows_of, args.batch_sizes, size, args.repeats, warmup=1)
    with open("/proc/loadavg") as f:
        load_after = f.read().split()[:3]
    reference = rows_of[0][0]
    print(BB.speed_table(rows, reference))
    print(f"load average after {' '.join(load_after)}")
    if args.json:
        from anchordet.files import atomic_write_json

        atomic_write_json(args.json, {"machine": info, "size": list(size), "threads": args.threads,
                                      "load_before": load, "load_after": load_after, "rows": BB.rows_as_dicts(rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
